"""Pure domain: vocabulary, states, transitions and errors. No I/O here."""
