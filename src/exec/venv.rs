//! Python environments: interpreter choice, venv creation and cache, requirement installation.
