"""Peer servers for the serving benchmark, each run by its own venv's Python (bench/.venvs/)."""
