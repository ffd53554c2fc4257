"""The HTTP API end to end: in-process, through a real serve, and the pages in Chromium."""
