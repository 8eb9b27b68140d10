"""Tiny video files written with PyAV, for the reader's tests.

Frames are lossless (FFV1 in Matroska, RGB), so a test can read back exactly which source
frame was used: frame i is filled with the value `frame_value(i)`.
"""

import fractions

import av
import numpy as np


def frame_value(i: int) -> int:
  return (37 * i + 11) % 256


def write_video(path, times_ms, width=32, height=24, codec="ffv1", pattern=None):
  """A video whose frame i is shown at times_ms[i] milliseconds (variable rate allowed)."""
  with av.open(path, "w") as container:
    stream = container.add_stream(codec)
    stream.width, stream.height = width, height
    stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
    # Millisecond timestamps kept as given (the encoder would otherwise use 1/rate).
    stream.codec_context.time_base = stream.time_base = fractions.Fraction(1, 1000)
    for i, t in enumerate(times_ms):
      image = np.full([height, width, 3], frame_value(i), np.uint8)
      if pattern is not None:
        image = pattern(i)
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      frame.pts, frame.time_base = t, stream.time_base
      container.mux(stream.encode(frame))
    container.mux(stream.encode())
  return path


def write_audio_only(path, seconds=1.0):
  with av.open(path, "w") as container:
    stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
    samples = np.zeros([1, int(8000 * seconds)], np.int16)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = 8000
    container.mux(stream.encode(frame))
    container.mux(stream.encode())
  return path


def write_no_frames(path):
  """An AVI file with a video stream and not a single frame (AVI keeps such a stream)."""
  with av.open(path, "w", format="avi") as container:
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height = 32, 24
    container.start_encoding()
  return path
