"""rctl node agent: registers a worker VM with an rctl cluster, heartbeats to
the leader and runs the tasks the Global Task Manifest assigns to it."""

__version__ = "0.1.0"
