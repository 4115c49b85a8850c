"""Errors raised while turning DICOM instances into a series."""

from __future__ import annotations

from collections.abc import Sequence


class InvalidSeriesError(ValueError):
    """The instances do not form one usable image series.

    ``files`` names the offending inputs (paths, SOP Instance UIDs or frame IDs) so a
    user can find them; the message always says what to do.
    """

    def __init__(self, message: str, files: Sequence[str] = ()) -> None:
        self.files = tuple(files)
        if self.files:
            shown = ", ".join(self.files[:5])
            more = f" (and {len(self.files) - 5} more)" if len(self.files) > 5 else ""
            message = f"{message} [{shown}{more}]"
        super().__init__(message)
