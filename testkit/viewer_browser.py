"""Headless Chromium (Debian's ``chromium``) driven by Playwright over OHIF: open a deep link, wait until the SEG is
painted, place views through a point, screenshot each view with the segment shown and hidden.

OHIF's globals (``window.services``, ``window.cornerstone``) are used only to wait and to place the camera; what is
painted is judged from screenshot pixels (testkit.viewer_pixels). Playwright's own browser download is never used:
``make chromium`` installs the Debian package, ``executable_path`` points at it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit import viewer_pixels as pixels

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # WebGL2 in software (ANGLE on SwiftShader): Chromium falls back to it under --disable-gpu today; naming it
    # keeps the volume (MPR) viewports working when that implicit fallback goes.
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
)
VIEWPORT = {"width": 1600, "height": 900}
MPR_VIEWPORTS = ("mpr-axial", "mpr-sagittal", "mpr-coronal")
# OHIF boots in 4-6 s here and hydrates the SEG after the CT; generous bounds for a loaded 2-core machine.
LOAD_TIMEOUT_MS = 120_000
PAINT_TIMEOUT_S = 60.0

_SEGMENTATION_READY = """(label) => {
  const s = window.services;
  if (!s || !window.cornerstone || !s.segmentationService) return false;
  const seg = s.segmentationService.getSegmentations().find(
      g => Object.values(g.segments).some(x => x && x.label === label));
  if (!seg) return false;
  const vp = s.viewportGridService.getActiveViewportId();
  return s.segmentationService.getSegmentationRepresentations(vp).some(r => r.visible) ? seg.segmentationId : false;
}"""

_CAMERA = """(id) => {
  const vp = window.cornerstone.getRenderingEngines()[0].getViewport(id);
  const r = vp.canvas.getBoundingClientRect();
  return {id, rect: [r.left, r.top, r.width, r.height],
          o: vp.canvasToWorld([0, 0]), x: vp.canvasToWorld([1, 0]), y: vp.canvasToWorld([0, 1]),
          normal: vp.getCamera().viewPlaneNormal, voi: vp.getProperties().voiRange};
}"""

_STACK_TO_POINT = """async ({id, point}) => {
  // A stack viewport shows whole slices: go to the one whose plane is nearest the point.
  const cs = window.cornerstone;
  const vp = cs.getRenderingEngines()[0].getViewport(id);
  let best = 0, bestDistance = Infinity;
  vp.getImageIds().forEach((imageId, i) => {
    const p = cs.metaData.get('imagePlaneModule', imageId);
    const r = p.rowCosines, c = p.columnCosines;
    const n = [r[1]*c[2]-r[2]*c[1], r[2]*c[0]-r[0]*c[2], r[0]*c[1]-r[1]*c[0]];
    const d = Math.abs(n.reduce((a, ni, k) => a + ni * (point[k] - p.imagePositionPatient[k]), 0));
    if (d < bestDistance) { bestDistance = d; best = i; }
  });
  await vp.setImageIdIndex(best);
  vp.render();
  return bestDistance;
}"""

_VOLUME_TO_POINT = """({id, point}) => {
  // A volume viewport: move the camera along its normal until the plane holds the point.
  const vp = window.cornerstone.getRenderingEngines()[0].getViewport(id);
  const c = vp.getCamera(), n = c.viewPlaneNormal;
  const d = n.reduce((a, ni, k) => a + ni * (point[k] - c.focalPoint[k]), 0);
  vp.setCamera({focalPoint: c.focalPoint.map((f, k) => f + d * n[k]),
                position: c.position.map((p, k) => p + d * n[k])});
  vp.render();
  return d;
}"""

_SEGMENT_VISIBLE = """({ids, segmentationId, visible}) => {
  ids.forEach(id => window.services.segmentationService.setSegmentVisibility(id, segmentationId, 1, visible));
}"""

_SEGMENT_COLOUR = """({id, segmentationId}) =>
  Array.from(window.services.segmentationService.getSegmentColor(id, segmentationId, 1))"""

_MPR_READY = """(ids) => {
  const s = window.services, engine = window.cornerstone.getRenderingEngines()[0];
  return ids.every(id => engine.getViewport(id) &&
    s.segmentationService.getSegmentationRepresentations(id).some(r => r.visible));
}"""


@dataclass
class Organ:
    """Where the planted organ is (LPS mm): what every view is checked against."""

    centre: Sequence[float]
    semi_axes: Sequence[float]


@dataclass
class OpenedSeg:
    """A deep link opened until its SEG was painted; ``seconds`` from ``page.goto`` to the first painted overlay."""

    page: Any
    segmentation_id: str
    viewport_id: str
    colour: list[int]
    seconds: float
    page_errors: list[str] = field(default_factory=list)


def playwright_missing_message() -> str:
    return "Playwright is not installed in .venv: run `make venv` (requirements-dev.txt pins playwright)"


def chromium_missing_message() -> str:
    return f"Chromium is not installed at {CHROMIUM}: run `make chromium` (Debian package chromium)"


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium for a test module (each page gets a fresh context: its own storage)."""
    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(chromium_missing_message())
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise RuntimeError(playwright_missing_message()) from error
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def _overlay_px(page: Any, rect: Sequence[float], colour: Sequence[int]) -> int:
    clip = {"x": rect[0], "y": rect[1], "width": rect[2], "height": rect[3]}
    return int(pixels.overlay_mask(pixels.load_png(page.screenshot(clip=clip)), colour).sum())


def open_seg(browser: Any, url: str, *, label: str, screenshot: Path) -> OpenedSeg:
    """Open ``url`` (a deep link; sign-in redirects included) in a fresh context and wait until the segment
    ``label`` is hydrated and painted in the active viewport."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    # Uncaught exceptions only: OHIF logs benign console errors while the SEG display set hydrates.
    page.on("pageerror", lambda error: errors.append(str(error)))
    started = time.monotonic()
    page.goto(url)
    segmentation_id = page.wait_for_function(
        _SEGMENTATION_READY, arg=label, timeout=LOAD_TIMEOUT_MS, polling=200
    ).json_value()
    viewport_id = page.evaluate("() => window.services.viewportGridService.getActiveViewportId()")
    colour = page.evaluate(_SEGMENT_COLOUR, {"id": viewport_id, "segmentationId": segmentation_id})
    rect = page.evaluate(_CAMERA, viewport_id)["rect"]
    deadline = time.monotonic() + PAINT_TIMEOUT_S
    while _overlay_px(page, rect, colour) < pixels.MIN_OVERLAY_PX:
        if time.monotonic() > deadline:
            raise AssertionError(f"segment {label!r} hydrated but never painted in {PAINT_TIMEOUT_S:.0f} s")
        page.wait_for_timeout(100)
    seconds = time.monotonic() - started
    page.screenshot(path=str(screenshot))
    return OpenedSeg(page, segmentation_id, viewport_id, colour, seconds, errors)


_BULK_DATA_URIS = """() => window.services.displaySetService.getActiveDisplaySets()
  .flatMap(d => (d.instances || []).slice(0, 1))
  .flatMap(i => Object.values(i).filter(v => v && typeof v === 'object' && v.BulkDataURI).map(v => v.BulkDataURI))"""


def bulk_data_uris(opened: OpenedSeg) -> list[str]:
    """The BulkDataURIs of the first instance of each displayed series, as OHIF holds them (after its rewrite)."""
    return list(opened.page.evaluate(_BULK_DATA_URIS))


def label_listed(opened: OpenedSeg, label: str) -> bool:
    """The segment's label as text in the segmentation panel (opened first: a deep link leaves it closed)."""
    page = opened.page
    text = page.get_by_text(label, exact=True).first
    if not text.is_visible():
        page.locator("[data-cy=panelSegmentation-btn]").click()
    try:
        text.wait_for(state="visible", timeout=15_000)
    except Exception:  # Playwright's TimeoutError: the label is not shown
        return False
    return True


def _wait_steady(page: Any, rects: Sequence[Sequence[float]], colour: Sequence[int], *, settle_s: float = 10,
                 timeout_s: float = 60) -> None:
    """Until renders are done: overlay counts equal over three polls 250 ms apart, and every view painted or
    ``settle_s`` passed (a view without overlay then fails its check with a message rather than a timeout)."""
    started = time.monotonic()
    history: list[list[int]] = []
    while time.monotonic() - started < timeout_s:
        history.append([_overlay_px(page, rect, colour) for rect in rects])
        steady = len(history) >= 3 and history[-1] == history[-2] == history[-3]
        if steady and (all(n >= pixels.MIN_OVERLAY_PX for n in history[-1]) or time.monotonic() - started > settle_s):
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"views kept changing for {timeout_s:.0f} s: overlay pixels {history[-3:]}")


def _check_views(opened: OpenedSeg, ids: Sequence[str], names: Sequence[str], organ: Organ, out: Path,
                 page_shot: str) -> list[pixels.ViewCheck]:
    page = opened.page
    cameras = [page.evaluate(_CAMERA, vid) for vid in ids]
    _wait_steady(page, [c["rect"] for c in cameras], opened.colour)
    shown = pixels.load_png(page.screenshot(path=str(out / page_shot)))
    page.evaluate(_SEGMENT_VISIBLE, {"ids": list(ids), "segmentationId": opened.segmentation_id, "visible": False})
    page.wait_for_timeout(500)
    hidden = pixels.load_png(page.screenshot())
    page.evaluate(_SEGMENT_VISIBLE, {"ids": list(ids), "segmentationId": opened.segmentation_id, "visible": True})
    checks = []
    for view, camera in zip(names, cameras, strict=True):
        a, b = pixels.crop(shown, camera["rect"]), pixels.crop(hidden, camera["rect"])
        check, debug = pixels.check_view(view, a, b, camera, colour=opened.colour, centre=organ.centre,
                                         semi_axes=organ.semi_axes)
        pixels.save_png(a, out / f"{view}.png")
        pixels.save_png(b, out / f"{view}-no-seg.png")
        pixels.save_png(debug, out / f"{view}-masks.png")
        checks.append(check)
    return checks


def check_axial_stack(opened: OpenedSeg, organ: Organ, out: Path) -> pixels.ViewCheck:
    """The deep link's own (axial stack) viewport at the slice through the organ's centre."""
    opened.page.evaluate(_STACK_TO_POINT, {"id": opened.viewport_id, "point": list(organ.centre)})
    return _check_views(opened, [opened.viewport_id], ["axial-stack"], organ, out, "axial-page.png")[0]


def check_mpr(opened: OpenedSeg, organ: Organ, out: Path) -> list[pixels.ViewCheck]:
    """OHIF's MPR layout (the SEG follows the CT into the volume viewports): axial, sagittal and coronal planes
    moved through the organ's centre (the default middle planes miss an off-centre organ)."""
    page = opened.page
    page.locator("[data-cy=layout-button]").click()
    page.locator("[data-cy=MPR]").click()
    page.wait_for_function(_MPR_READY, arg=list(MPR_VIEWPORTS), timeout=LOAD_TIMEOUT_MS, polling=200)
    for vid in MPR_VIEWPORTS:
        page.evaluate(_VOLUME_TO_POINT, {"id": vid, "point": list(organ.centre)})
    return _check_views(opened, MPR_VIEWPORTS, MPR_VIEWPORTS, organ, out, "mpr-page.png")


def close(opened: OpenedSeg) -> None:
    opened.page.context.close()


def view_failures(checks: Sequence[pixels.ViewCheck]) -> dict[str, list[str]]:
    return {c.view: c.failures for c in checks if c.failures}

