"""The notebooks, shipped inside the package as ``zoorepro.notebooks`` (found with
importlib.resources by ``zoorepro.runner.notebooks_dir``).  Regenerate with
``python tools/make_notebooks.py``."""
