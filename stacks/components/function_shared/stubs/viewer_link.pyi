# What mypy reads for ``viewer_link``, a top-level module of every function's asset (pyproject.toml, mypy_path):
# the repository module it is a copy of.
from model_code.core.viewer_link import check_viewer_url as check_viewer_url
from model_code.core.viewer_link import viewer_link as viewer_link
