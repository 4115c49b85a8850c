"""The viewer deep link: the exact form the browser test opens, and refusals that name the bad value."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from model_code.core.viewer_link import check_viewer_url, viewer_link

STUDY = "1.2.826.0.1.3680043.8.498.10"
SEG_SERIES = "1.2.826.0.1.3680043.8.498.11"


def test_the_link_opens_the_study_with_the_seg_series_on_it() -> None:
    link = viewer_link("https://viewer.imaging.example.org/", STUDY, SEG_SERIES)
    assert link == (f"https://viewer.imaging.example.org/viewer?StudyInstanceUIDs={STUDY}"
                    f"&initialSeriesInstanceUID={SEG_SERIES}")
    assert parse_qs(urlsplit(link).query) == {"StudyInstanceUIDs": [STUDY], "initialSeriesInstanceUID": [SEG_SERIES]}


def test_plain_http_only_on_loopback() -> None:
    assert check_viewer_url("http://127.0.0.1:8042") == "http://127.0.0.1:8042"
    with pytest.raises(ValueError, match="must use https"):
        check_viewer_url("http://viewer.imaging.example.org")


@pytest.mark.parametrize("url", ["viewer.imaging.example.org", "https://", "https://v.example.org/?a=1",
                                 "https://v.example.org/#x", "ftp://v.example.org"])
def test_a_url_that_is_not_an_origin_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="the viewer URL"):
        check_viewer_url(url)


@pytest.mark.parametrize(("study", "series", "named"), [
    ("1.2.3&x=1", SEG_SERIES, "the study UID"),  # would smuggle a parameter into the link
    (STUDY, "1." + "2" * 64, "the SEG series UID"),  # over 64 characters
    (STUDY, "", "the SEG series UID"),
])
def test_a_bad_uid_is_refused_by_name(study: str, series: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        viewer_link("https://viewer.imaging.example.org", study, series)
