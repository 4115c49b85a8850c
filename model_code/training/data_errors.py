"""The one error bad training data raises: it names the file and says what to fix."""

from __future__ import annotations


class TrainingDataError(ValueError):
    """A channel is empty, a file is missing or unreadable, or image and label disagree."""
