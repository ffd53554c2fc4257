"""Pages for store staff and chat agents, served by the engine (no front-end build step)."""
