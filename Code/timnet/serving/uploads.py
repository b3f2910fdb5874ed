"""Uploaded bytes -> a checked mono waveform, in memory (no temporary file), or a 4xx reason.

Everything a client can get wrong is an :class:`UploadError` carrying the HTTP status
and one sentence saying what to do; the server turns it into a JSON error. Decoding is
libsndfile's (``soundfile``): WAV, FLAC, OGG/Vorbis, Opus, MP3 and the other formats
it reads. WebM, MP4/M4A and AAC are not among them (no ffmpeg here): the page encodes
its microphone recordings as WAV for that reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

# A recording whose loudest sample is below this (-60 dBFS) holds nothing to classify.
SILENCE_PEAK = 1e-3
DECODABLE = "WAV, FLAC, OGG/Vorbis, Opus or MP3"


class UploadError(Exception):
    """A request the client can fix: ``status`` (4xx), ``kind`` (a short code) and the message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


@dataclass
class Waveform:
    signal: np.ndarray  # mono float32
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.signal) / self.sample_rate


def too_large(limit_bytes: int) -> UploadError:
    return UploadError(413, "too_large", f"the upload is larger than the server's limit of "
                                         f"{limit_bytes / 1024 / 1024:g} MB; send a shorter or compressed recording")


def extract_multipart(body: bytes, content_type: str) -> bytes:
    """The audio of a multipart/form-data body: the part named ``file``, else the first
    part with a file name, else the only part. Parsed in memory."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "bad_multipart", "multipart/form-data without a boundary; send the audio as a form "
                                                "field named file, or as the raw request body")
    parts: list[dict] = []
    header: dict[str, bytes] = {"field": b"", "value": b""}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header["field"].decode("latin-1").lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - any parser complaint is the client's malformed body
        raise UploadError(400, "bad_multipart", f"malformed multipart/form-data body ({exc})") from None
    named = []
    for part in parts:
        _, disp = parse_options_header(part["headers"].get("content-disposition", b""))
        named.append((disp.get(b"name", b"").decode("latin-1"), b"filename" in disp, part))
    for pick in (lambda n, f: n == "file", lambda n, f: f):
        for name, has_file, part in named:
            if pick(name, has_file):
                return bytes(part["data"])
    if len(named) == 1:
        return bytes(named[0][2]["data"])
    raise UploadError(400, "no_file", "the form holds no audio file; send it as the field named file")


def decode(data: bytes, max_duration: float) -> Waveform:
    """Decode and check one recording: 400 empty, 415 not audio, 422 too long or silent."""
    import soundfile as sf

    if not data:
        raise UploadError(400, "empty", "the upload is empty (0 bytes); send an audio file")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            sample_rate, frames = int(f.samplerate), int(f.frames)
            if sample_rate <= 0:
                raise UploadError(415, "not_audio", "the audio file gives no sample rate")
            if frames > 0 and frames / sample_rate > max_duration:
                raise UploadError(422, "too_long", f"the recording lasts {frames / sample_rate:.1f} s, more than "
                                                   f"the server's limit of {max_duration:g} s; send a shorter one")
            audio = f.read(dtype="float32", always_2d=True)
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile's complaint about what it was given
        reason = " ".join(str(exc).split())
        if reason.startswith("Error opening"):  # "Error opening <_io.BytesIO ...>: Format not recognised."
            reason = reason.split(">: ", 1)[-1]
        reason = reason.rstrip(".") or type(exc).__name__
        raise UploadError(415, "not_audio", f"not audio the server can decode ({reason}); send {DECODABLE} "
                                            f"(WebM, MP4 and AAC cannot be read)") from None
    signal = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if not signal.size:
        raise UploadError(400, "empty", "the audio file holds no samples; send a recording")
    if signal.size / sample_rate > max_duration:  # formats that do not say their length up front
        raise UploadError(422, "too_long", f"the recording lasts {signal.size / sample_rate:.1f} s, more than the "
                                           f"server's limit of {max_duration:g} s; send a shorter one")
    if not np.all(np.isfinite(signal)):
        raise UploadError(422, "not_finite", "the audio holds NaN or infinite samples")
    if float(np.max(np.abs(signal))) < SILENCE_PEAK:
        raise UploadError(422, "silent", "the recording is silent (no sample louder than -60 dBFS); "
                                         "check the microphone or the file")
    return Waveform(np.ascontiguousarray(signal, dtype=np.float32), sample_rate)
