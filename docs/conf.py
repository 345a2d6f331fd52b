"""Sphinx configuration: the API reference from the docstrings (numpydoc) and the README."""

project = "granger_prune"
extensions = ["sphinx.ext.autodoc", "numpydoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autodoc_default_options = {
    "members": True, "inherited-members": False, "show-inheritance": True,
    # scikit-learn's metadata-routing methods, which the estimator inherits, with its docstrings
    "exclude-members": "set_fit_request, set_score_request, set_predict_request, get_metadata_routing",
}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
# the README links to the studies' READMEs, files of the repository outside these pages
suppress_warnings = ["myst.header", "myst.xref_missing"]
html_theme = "alabaster"
