"""Sphinx configuration of the tripleoclient-upgrade documentation."""

project = "tripleoclient-upgrade"
author = "The tripleoclient-upgrade developers"
copyright = "2026, The tripleoclient-upgrade developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
