"""The pytest face: the plugin object's hooks, the virtual test module, fixtures and the marker API, the xdist
hand-off and the role objects (single process, xdist controller, xdist worker). Everything pytest-specific lives
here; the run core (`pytest_editeval.run`) receives pytest's facts through one small context object."""
