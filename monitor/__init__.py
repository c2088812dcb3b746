"""The memory monitor service: replay memory statistics → the ``memory_monitoring`` topic."""
