"""What every connector shares: engine commands, the gateway that applies them, checkpoints,
dead letters, retries and metrics. Vendor code lives in the sibling subpackages."""
