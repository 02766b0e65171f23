"""htcgrid's shared core: the one library of domain logic.

Every Lambda, the worker agent, the client and the local grid import this package; it imports
none of them. ``models`` holds the documents, ``lifecycle`` the task state machine, ``table``,
``queues`` and ``payloads`` the AWS adapters, ``settings`` the configuration.
"""

__version__ = "0.1.0"
