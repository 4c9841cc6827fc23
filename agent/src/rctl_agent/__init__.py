"""rctl node agent: registers a worker VM with an rctl cluster, heartbeats to
the leader and runs the tasks the Global Task Manifest assigns to it."""

# rctl's version: packaging/agent/build.sh stamps the release's here (in its
# copy of the sources); pyproject.toml reads it. A source checkout is 0.0.0+dev.
__version__ = "0.0.0+dev"
