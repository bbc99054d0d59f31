"""The web demo end to end: `python -m experiments.demo` (the shipped model) in a process of its own, with a new home,
temporary and working folder, used from headless Chromium driven by Selenium through the system's chromedriver.

A dev photo of one person and the first frames of another person's dev clip are uploaded; the returned video must
play in the browser (its duration and decoded frame count through the page's `<video>`) and be H.264 / yuv420p; a
driver that claims 1000 fps is cut to the demo's frame cap; bad uploads get their one-line messages in the page, file
names shown as text; the page asks nothing of the network; uploads and results are deleted once older than the
demo's keep time; and the demo writes nothing outside its temporary folder, which is gone once it stops. The tests
share one demo process and run in file order: the last one stops it.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import av
import cv2
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from bigo_facegen import annotations, bigo_folder, video
from tests import bad_images

REPO = Path(__file__).resolve().parents[1]
SOURCE_CLIP = "mead_W011_neutral.mp4"   # 256 x 256, one person
DRIVER = "dpe_d.mp4"                    # 256 x 256 at 25 fps, another person
DRIVING_FRAMES = 12
# The demo's limits in this test: the driving upload is cut to its first 10 frames, the 240 x 200 photo is scaled
# down to 192 x 160, and a 2 MB file is too large.
MAX_SECONDS = 0.4
USED_FRAMES = 10
MAX_SIDE = 192
SCALED_SIZE = (192, 160)
MAX_UPLOAD_MB = 1
# A driver that claims 1000 fps: 0.4 s of it would be 400 frames; the demo's cap is 0.4 s at 30 fps.
FAST_FPS = 1000
CAPPED_FRAMES = 12
# Uploads and results are deleted 30 s after they were made, looked for every 30 s.
KEEP_MINUTES = 0.5
KEEP_SECONDS = 60
START_SECONDS = 240   # the demo's start on a busy 2-core machine: TensorFlow, Gradio, the model, the example rows
RUN_SECONDS = 120
PAGE_SECONDS = 30     # the page, an upload
INSTALL = "install them with: apt-get install chromium chromium-driver (Debian; .ci/run does it)"


@dataclasses.dataclass
class Demo:
    """The demo's process, its address, the home, temporary and working folders it was given (new, empty), and the
    files its example rows put in Gradio's folder as it started."""
    process: subprocess.Popen
    url: str
    home: Path
    tmp: Path
    cwd: Path
    log: Path
    examples: set[Path] = dataclasses.field(default_factory=set)

    def results(self) -> set[Path]:
        """The request folders of its results (under its one temporary folder)."""
        return set(self.tmp.glob("bigo_facegen_demo_*/gradio/results/*"))

    def served_files(self) -> set[Path]:
        """The files in Gradio's folder (under its one temporary folder)."""
        return {path for path in self.tmp.glob("bigo_facegen_demo_*/gradio/**/*") if path.is_file()}


@dataclasses.dataclass
class Inputs:
    photo: Path        # 240 x 200, a face
    driving: Path      # DRIVING_FRAMES frames of another person
    background: Path   # a corner of a dev frame: no face
    text_png: Path     # text named like an image
    text_mp4: Path     # text named like a video
    large: Path        # over the upload limit
    fast: Path         # a driver that claims FAST_FPS
    markup: Path       # text named like HTML
    huge: Path         # a PNG of 12000 x 12000 pixels in a few KB
    truncated: Path    # the photo as a JPEG cut in half
    still: Path        # the photo as a JPEG, named like a video (the page takes only video names there)


@pytest.fixture(scope="module")
def browser_programs() -> tuple[str, str]:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(f"the demo's browser test needs chromium and chromedriver on PATH; {INSTALL}")
    return chromium, chromedriver


@pytest.fixture(scope="module")
def inputs(real_faces_dir, tmp_path_factory) -> Inputs:
    folder = tmp_path_factory.mktemp("uploads")
    frame = next(video.read_frames(real_faces_dir / "videos" / SOURCE_CLIP))
    photo, background = folder / "photo.png", folder / "background.png"
    cv2.imwrite(str(photo), cv2.cvtColor(frame[20:220, 8:248], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(background), cv2.cvtColor(frame[:64, :64], cv2.COLOR_RGB2BGR))
    driver = real_faces_dir / "videos" / DRIVER
    driving = folder / "driving.mp4"
    video.write_video(driving, itertools.islice(video.read_frames(driver), DRIVING_FRAMES), video.probe(driver).fps)
    text_png, text_mp4, large = folder / "notes.png", folder / "clip.mp4", folder / "large.mp4"
    text_png.write_text("not an image\n")
    text_mp4.write_text("not a video\n")
    large.write_bytes(os.urandom(2 * MAX_UPLOAD_MB * 1024 * 1024))
    fast = folder / "fast.mp4"
    video.write_video(fast, itertools.islice(video.read_frames(driver), 3 * CAPPED_FRAMES), FAST_FPS)
    markup = folder / "<em>notes.png"
    markup.write_text("not an image\n")
    huge = bad_images.blank_png(folder / "huge.png", 12000, 12000)
    jpegs = bad_images.damaged_jpegs(frame[20:220, 8:248], folder)
    still = folder / "still.mp4"
    still.write_bytes(jpegs["good"].read_bytes())
    return Inputs(photo, driving, background, text_png, text_mp4, large, fast, markup, huge, jpegs["truncated"], still)


@pytest.fixture(scope="module")
def demo(real_faces_dir, tmp_path_factory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    home, tmp, cwd = root / "home", root / "tmp", root / "cwd"
    for folder in (home, tmp, cwd):
        folder.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    log = root / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "experiments.demo", f"--port={port}", f"--max_upload_mb={MAX_UPLOAD_MB}",
             f"--max_seconds={MAX_SECONDS}", f"--max_side={MAX_SIDE}", f"--keep_minutes={KEEP_MINUTES}",
             f"--examples={real_faces_dir}"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Demo(process, f"http://127.0.0.1:{port}", home, tmp, cwd, log)
    try:
        _wait_until_served(running)
        running.examples = running.served_files()
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_served(demo: Demo) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if demo.process.poll() is not None:
            pytest.fail(f"the demo stopped with status {demo.process.returncode}:\n{_tail(demo.log)}")
        try:
            with urllib.request.urlopen(demo.url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    pytest.fail(f"the demo did not serve {demo.url} within {START_SECONDS} s:\n{_tail(demo.log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def browser(browser_programs, tmp_path_factory):
    chromium, chromedriver = browser_programs
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                     # No name resolves but the demo's address: a page that needed the network would show it.
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    # Every request the page makes, to check that all go to the demo.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        # The system's chromedriver, given by path: Selenium Manager must not try to download one.
        patch.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
        try:
            driver.set_script_timeout(60)
            yield driver
        finally:
            driver.quit()


def _find(browser, css: str, seconds: float = PAGE_SECONDS):
    """The first element matching `css`, once there is one."""
    return WebDriverWait(browser, seconds).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR,
                                                                                                  css)))


def _open(browser, demo: Demo) -> None:
    browser.get(demo.url)
    _find(browser, "#run")


def _upload(browser, slot: str, path: Path) -> None:
    _find(browser, f"#{slot} input[type=file]").send_keys(str(path))
    # The upload is done when the slot shows it, or the page refused it.
    _find(browser, f"#{slot} img, #{slot} video, .toast-body")


def _toasts(browser) -> list[str]:
    """The texts of the page's messages (read in one script: Gradio re-renders them)."""
    return browser.execute_script("return Array.from(document.querySelectorAll('.toast-body'), e => e.innerText)")


# The progress bar's texts, the output video's address and the summary line, read at one time.
_RUN_STATE = """
const video = document.querySelector('#output video');
return {progress: Array.from(document.querySelectorAll('.progress-text'), e => e.textContent),
        src: video ? video.src : null, summary: document.querySelector('#summary').textContent.trim()};
"""


# Plays the video from the start to its end and reports what the browser decoded.
_PLAY_TO_END = """
const done = arguments[arguments.length - 1];
const v = document.querySelector('#output video');
const report = () => {
    const quality = v.getVideoPlaybackQuality();
    done({readyState: v.readyState, duration: v.duration, width: v.videoWidth, height: v.videoHeight,
          frames: quality.totalVideoFrames, error: v.error && v.error.message});
};
v.muted = true;
v.currentTime = 0;
v.addEventListener('ended', report, {once: true});
v.addEventListener('error', report, {once: true});
v.play().catch(e => done({error: String(e)}));
"""


def test_a_photo_driven_by_another_persons_clip_gives_a_video_that_plays(browser, demo, inputs, tmp_path):
    _open(browser, demo)
    _upload(browser, "source", inputs.photo)
    _upload(browser, "driving", inputs.driving)
    _find(browser, "#mode [data-testid=absolute-radio-label]").click()
    _find(browser, "#reference [data-testid=best-radio-label]").click()
    _find(browser, "#tracking [data-testid=detect-radio-label]").click()
    _find(browser, "#gaze input[type=checkbox]").click()   # on by default: the summary says nothing of gaze when off
    _find(browser, "#run").click()

    progress, state = set(), {}
    deadline = time.monotonic() + RUN_SECONDS
    while not (state.get("src") and state.get("summary")) and time.monotonic() < deadline:
        state = browser.execute_script(_RUN_STATE)
        progress.update(state["progress"])
        time.sleep(0.1)
    src = state.get("src")
    assert src, f"no video within {RUN_SECONDS} s; page messages: {_toasts(browser)}"
    assert progress, "no progress bar was shown while the video was made"
    # The demo's own file, not a copy Gradio converted: Gradio re-encodes videos it deems unplayable.
    assert "/gradio/results/" in src and src.endswith("/animated.mp4"), src
    assert state["summary"] == (f"{USED_FRAMES} frames, absolute motion, driving reference best, driving keypoints by "
                                f"detect.")

    played = browser.execute_async_script(_PLAY_TO_END)
    assert played["error"] is None
    assert played["readyState"] >= 2  # HAVE_CURRENT_DATA: a frame is decoded
    assert (played["width"], played["height"]) == SCALED_SIZE
    assert played["duration"] == pytest.approx(USED_FRAMES / 25, abs=0.5 / 25)
    assert played["frames"] == USED_FRAMES

    # The file served is H.264 / yuv420p, what every browser plays.
    served = tmp_path / "served.mp4"
    with urllib.request.urlopen(src) as response:
        served.write_bytes(response.read())
    with av.open(str(served)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert sum(1 for _ in container.decode(stream)) == USED_FRAMES

    outside = sorted(url for url in _requested_urls(browser)
                     if url.startswith(("http:", "https:", "ws:", "wss:")) and not url.startswith(demo.url))
    assert not outside, f"the page asked the network for {outside}"


def test_a_driver_that_claims_1000_fps_is_cut_to_the_frame_cap(browser, demo, inputs):
    # Before, the cap was max_seconds at the rate the file claims: 400 frames, all 36 of this one.
    _open(browser, demo)
    _upload(browser, "source", inputs.photo)
    _upload(browser, "driving", inputs.fast)
    _find(browser, "#run").click()
    deadline = time.monotonic() + RUN_SECONDS
    state = {}
    while not state.get("src") and not _toasts(browser) and time.monotonic() < deadline:
        state = browser.execute_script(_RUN_STATE)
        time.sleep(0.1)
    # The page's defaults: relative motion from the first driving frame, the driving keypoints tracked, the gaze
    # followed.
    assert state.get("summary") == (f"{CAPPED_FRAMES} frames, relative motion, driving reference first, driving "
                                    f"keypoints by track, the driver's gaze followed."), _toasts(browser)


def _requested_urls(browser) -> set[str]:
    messages = (json.loads(entry["message"])["message"] for entry in browser.get_log("performance"))
    return {m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"}


def test_the_example_rows_pair_two_persons_of_the_dev_clips(browser, demo, real_faces_dir):
    _open(browser, demo)
    videos = annotations.load(real_faces_dir / bigo_folder.ANNOTATIONS_FILE)
    person = {Path(name).stem: p for name, p in bigo_folder.identities(videos, real_faces_dir).items()}
    _find(browser, "[data-testid^=dataset-cell]")
    photos = [Path(e.get_attribute("src")).name for e in browser.find_elements(
        By.CSS_SELECTOR, "[data-testid$='-0'][data-testid^=dataset-cell] img")]
    clips = [Path(e.get_attribute("src")).stem for e in browser.find_elements(
        By.CSS_SELECTOR, "[data-testid$='-1'][data-testid^=dataset-cell] video")]
    assert len(photos) == len(clips) == 3
    for photo, clip in zip(photos, clips):
        photo_clip = photo.rsplit("_", 1)[0]  # <clip>_<frame>.png
        assert person[photo_clip] != person[clip]

    _find(browser, "[data-testid=dataset-cell-0-0]").click()
    assert Path(_find(browser, "#source img").get_attribute("src")).name == photos[0]
    assert Path(_find(browser, "#driving video").get_attribute("src")).stem == clips[0]


@pytest.mark.parametrize("source, driving, message", [
    ("text_png", "driving", "notes.png: not a readable image"),
    ("photo", "text_mp4", "clip.mp4: cannot be opened as a video"),
    ("background", "driving", "background.png: dlib finds no face in the source image"),
    ("photo", "large", f'exceed the maximum allowed size of {MAX_UPLOAD_MB:.1f} Mb: "large.mp4"'),
    # Before, the name was rendered as HTML (an <em> element), the 144-megapixel PNG decoded (432 MB), the truncated
    # JPEG had "no face" and the JPEG drove as a video of one frame.
    ("markup", "driving", "<em>notes.png: not a readable image"),
    ("huge", "driving", "huge.png: 12000x12000 pixels, over the 100,000,000 an image may have"),
    ("truncated", "driving", "truncated.jpg: the image is damaged (truncated or corrupt): Premature end of JPEG file"),
    ("photo", "still", "still.mp4: is a JPEG image, not a video"),
], ids=["text_as_image", "text_as_video", "no_face", "too_large", "name_as_html", "too_many_pixels", "damaged",
        "image_as_driver"])
def test_bad_uploads_are_refused_with_a_message_in_the_page(browser, demo, inputs, source, driving, message):
    results = demo.results()
    _open(browser, demo)
    _upload(browser, "source", getattr(inputs, source))
    _upload(browser, "driving", getattr(inputs, driving))
    _find(browser, "#run").click()
    deadline = time.monotonic() + RUN_SECONDS
    while not any(message in toast for toast in _toasts(browser)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any(message in toast for toast in _toasts(browser)), _toasts(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, ".toast-body em"), "a file name was rendered as HTML"
    assert not browser.find_elements(By.CSS_SELECTOR, "#output video")
    assert demo.results() == results  # a refused request leaves nothing


def test_uploads_and_results_are_deleted_once_older_than_the_keep_time(demo):
    # What the tests before uploaded and made: gone once older than the keep time and one round of Gradio's look
    # (KEEP_SECONDS in all). Before, every file was kept until the demo stopped.
    kept = demo.served_files() - demo.examples
    assert any(path.name == "animated.mp4" for path in kept) and any(path.name == "photo.png" for path in kept), kept
    deadline = max(path.lstat().st_ctime for path in kept) + KEEP_SECONDS + 30
    while (left := [path for path in kept if path.exists()]) and time.time() < deadline:
        time.sleep(1)
    assert not left, f"kept longer than {KEEP_SECONDS} s: {left}"


def test_stopping_the_demo_leaves_nothing_behind(demo):
    # While it ran, everything it wrote went into its one temporary folder.
    assert [p.name.startswith("bigo_facegen_demo_") for p in demo.tmp.iterdir()] == [True]
    assert not list(demo.home.iterdir()) and not list(demo.cwd.iterdir())
    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(timeout=60) == 128 + signal.SIGTERM, _tail(demo.log)
    assert not list(demo.tmp.iterdir())
    assert not list(demo.home.iterdir()) and not list(demo.cwd.iterdir())
