#!/usr/bin/env python3
"""A client for the tinyvae firmware's serial protocol, version 5.

Written from docs/protocol.md alone (no Rust bindings): it is the specification's second
implementation, and tests/tests/protocol_doc.rs runs it against the Rust code's frames
and against the real firmware in QEMU.

Python 3.8 or later, standard library only. The port is opened with pyserial when it
is installed; otherwise (or with --raw-tty) with os.open and termios raw mode, which
serves a POSIX serial device or the emulator's pty.

As a command (one JSON line per response on stdout):

    python3 tinyvae_client.py --port /dev/pts/3 info
    python3 tinyvae_client.py --port /dev/pts/3 encode digit.raw [more.raw ...]
    python3 tinyvae_client.py --port /dev/pts/3 generate --temperature 1.0 42 [43 ...]
    python3 tinyvae_client.py --port /dev/pts/3 calibrate --frames 200
    python3 tinyvae_client.py --port /dev/pts/3 detector
    python3 tinyvae_client.py --port /dev/pts/3 request '{"SetThreshold": {"threshold": 0}}'
    python3 tinyvae_client.py frame '"Info"'          # a request's frame, in hex
    python3 tinyvae_client.py unframe 0a06069006044bc9804400   # a response frame, decoded

An image file holds the raw pixels, one byte each (0 black, 255 white), row major, as
many as the model takes (784 for 28 x 28). The first bundled test digit, for instance:

    python3 -c "import gzip; d = gzip.open('data/mnist-10k/test-images-idx3-ubyte.gz').read();
    open('digit.raw', 'wb').write(d[16:16 + 784])"

Q16 values are printed raw: divide by 65536 for the real number.

Values (requests and responses) are plain Python data, shaped like the JSON the Rust
code's serde derives produce: a variant without fields is its name ("Info"); a variant
with fields is a one-key dict ({"Generate": {"seed": 42, "temperature": 65536}}); one
that wraps a struct holds the struct's dict ({"Info": {"protocol_version": 1, ...}});
sequences and fixed arrays are lists, strings are str, bools are bool, an absent
optional value is None (JSON null), and a detector term is its kebab-case name
("missing-ink").

Exit status: 0 when every response is an answer; 2 when the device answered an error
frame (printed like any response, e.g. {"Error": {"WrongImageSize": {...}}}); 1 when
the client itself failed (timeout, a bad frame on the line, bad arguments).

As a module:

    from tinyvae_client import Client
    with Client("/dev/pts/3") as device:
        print(device.info()["model_name"])
        encoded = device.encode(pixels)          # bytes of the model's input size
        generated = device.generate(42, 1.0)
        device.calibrate(200)                    # the next 200 scored frames are normal
        state = device.detector()                # {"params": ..., "calibration_left": ...}
"""

import argparse
import json
import os
import select
import sys
import time

# Section 2 of docs/protocol.md.
PROTOCOL_VERSION = 10
MAX_PAYLOAD = 1400
MAX_FRAME = 1407
MAX_PIXELS = 1024
MAX_LATENT = 32
MAX_CODE = 32
MAX_NAME = 24
MAX_FIRMWARE_VERSION = 16
Q16_ONE = 65536
# Section 7, `DetectorParams`: one TermParams per detector term.
TERMS = 17
DEFAULT_TIMEOUT = 20.0


class FrameError(Exception):
    """A frame that does not decode; `code` names the failure like the protocol's
    ErrorCode (FrameTooLong, EmptyFrame, BadCobs, BadCrc, BadMessage, TrailingBytes)."""

    def __init__(self, code, detail=""):
        super().__init__(code + (": " + detail if detail else ""))
        self.code = code


class DeviceError(Exception):
    """The device answered Response::Error; `error` is the ErrorCode value."""

    def __init__(self, error):
        super().__init__("the device answered an error: " + json.dumps(error))
        self.error = error
        self.code = error if isinstance(error, str) else next(iter(error))


class VersionError(Exception):
    """The device speaks another protocol version than this client."""


# --- The CRC (section 3): CRC-32C, reflected, init and final XOR 0xFFFFFFFF. ---


def _crc_table():
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data):
    """CRC-32C of `data` (crc32c(b"123456789") == 0xE3069283)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


# --- COBS (section 4). ---


def cobs_encode(payload):
    """The COBS blocks of `payload`: no zero byte, no terminator."""
    out = bytearray()
    block = bytearray()
    ended_full = False
    for byte in payload:
        ended_full = False
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
                ended_full = True
    # The last block, unless the payload ended with a full 254-byte block.
    if not ended_full:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(body):
    """The payload of a frame body (the bytes before the zero)."""
    out = bytearray()
    i = 0
    while i < len(body):
        code = body[i]
        if code == 0:
            raise FrameError("BadCobs", "a zero byte inside the frame")
        if i + code > len(body):
            raise FrameError("BadCobs", "a block runs past the end of the frame")
        out += body[i + 1 : i + code]
        i += code
        if code != 0xFF and i < len(body):
            out.append(0)
    return bytes(out)


# --- Values (section 5): varints, zigzag, sequences, strings, structs, enums. ---

# Field types: "u8"-sequences and Q16 sequences carry their capacity.
PIXELS = ("pixels", MAX_PIXELS)
LATENT = ("q16s", MAX_LATENT)
# A latent code: bytes, read like pixels (section 7, `Compressed`).
CODE = ("pixels", MAX_CODE)
_BITS = {"u16": 16, "u32": 32, "u64": 64}


def _optional(kind):
    """An optional value of type `kind`: a tag byte 0 (None) or 1, then the value."""
    return ("option", kind)


def _array(kind, n):
    """Exactly `n` values of type `kind`, one after the other, with no length."""
    return ("array", kind, n)


# Structs (sections 7): their fields in wire order.
STRUCTS = {
    "DeviceInfo": [
        ("protocol_version", "u16"),
        ("firmware_version", ("str", MAX_FIRMWARE_VERSION)),
        ("model_name", ("str", MAX_NAME)),
        ("model_hash", "u32"),
        ("input_width", "u16"),
        ("input_height", "u16"),
        ("latent", "u16"),
        ("parameters", "u32"),
        ("threshold", "q16"),
        ("flash_used", "u32"),
        ("ram_static", "u32"),
        ("stack_high_water", "u32"),
    ],
    "ScoreReport": [
        ("reconstruction", "q16"),
        ("kl", "q16"),
        ("score", "q16"),
        ("threshold", "q16"),
        ("anomalous", "bool"),
        ("detector", _optional("DetectorReport")),
    ],
    "DetectorReport": [
        ("score", "q16"),
        ("threshold", "q16"),
        ("fired", "Term"),
        ("anomalous", "bool"),
    ],
    "TermParams": [
        ("high", "i32"),
        ("scale_high", "i32"),
        ("low", "i32"),
        ("scale_low", "i32"),
    ],
    "DetectorParams": [
        ("terms", _array("TermParams", TERMS)),
        ("threshold", "q16"),
    ],
    "DetectorState": [
        ("params", _optional("DetectorParams")),
        ("calibration_left", "u16"),
    ],
    "Encoded": [
        ("mu", LATENT),
        ("logvar", LATENT),
        ("score", "ScoreReport"),
        ("instructions", "u64"),
    ],
    "Reconstructed": [
        ("image", PIXELS),
        ("score", "ScoreReport"),
        ("instructions", "u64"),
    ],
    "Generated": [
        ("z", LATENT),
        ("image", PIXELS),
        ("instructions", "u64"),
    ],
    "Denoised": [
        ("image", PIXELS),
        ("instructions", "u64"),
    ],
    "Compressed": [
        ("code", CODE),
        ("bits", "u8"),
        ("instructions", "u64"),
    ],
    "Stats": [
        ("frames", "u32"),
        ("errors", "u32"),
        ("scored", "u32"),
        ("anomalies", "u32"),
        ("generated", "u32"),
        ("denoised", "u32"),
        ("compressed", "u32"),
        ("instructions", "u64"),
    ],
}

# Enums (sections 6 to 8): variants in discriminant order. A variant's content is None
# (no fields), a struct's name (it wraps that struct) or a list of fields.
ENUMS = {
    "Request": [
        ("Info", None),
        ("Encode", [("image", PIXELS)]),
        ("Reconstruct", [("image", PIXELS)]),
        ("Decode", [("z", LATENT)]),
        ("Generate", [("seed", "u64"), ("temperature", "q16")]),
        ("SetThreshold", [("threshold", "q16")]),
        ("Stats", None),
        ("Denoise", [("image", PIXELS)]),
        ("Compress", [("image", PIXELS), ("bits", "u8")]),
        ("Calibrate", [("frames", "u16")]),
        ("Detector", None),
        ("CalibrateThreshold", [("frames", "u16")]),
    ],
    "Response": [
        ("Info", "DeviceInfo"),
        ("Encoded", "Encoded"),
        ("Reconstructed", "Reconstructed"),
        ("Generated", "Generated"),
        ("ThresholdSet", [("threshold", "q16")]),
        ("Stats", "Stats"),
        ("Error", "ErrorCode"),
        ("Denoised", "Denoised"),
        ("Compressed", "Compressed"),
        ("Calibrating", [("frames", "u16")]),
        ("Detector", "DetectorState"),
    ],
    "ErrorCode": [
        ("FrameTooLong", None),
        ("BadCobs", None),
        ("BadCrc", None),
        ("BadMessage", None),
        ("TrailingBytes", None),
        ("EmptyFrame", None),
        ("WrongImageSize", [("expected", "u16"), ("got", "u16")]),
        ("WrongLatentSize", [("expected", "u16"), ("got", "u16")]),
        ("ResponseTooLarge", None),
        ("WrongCodeBits", [("min", "u8"), ("max", "u8"), ("got", "u8")]),
    ],
    # The fault detector's terms (section 7, `Term`), named as JSON names them.
    "Term": [
        (name, None)
        for name in (
            "elbo",
            "missing-ink",
            "excess-ink",
            "holes",
            "unseen",
            "cuts",
            "centroid-x",
            "centroid-y",
            "ink",
            "bright",
            "midtones",
            "block",
            "extent",
            "ends",
            "softness",
            "dimmest",
            "head",
        )
    ],
}


def _varint(out, value, bits):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ValueError("%r is not a u%d" % (value, bits))
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _zigzag(out, value):
    if not isinstance(value, int) or isinstance(value, bool) or not -(1 << 31) <= value < 1 << 31:
        raise ValueError("%r is not an i32" % (value,))
    _varint(out, ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF, 32)


def _write(out, kind, value):
    """Appends the encoding of `value`, of type `kind`, to the bytearray `out`."""
    if kind in _BITS:
        _varint(out, value, _BITS[kind])
    elif kind in ("q16", "i32"):
        _zigzag(out, value)
    elif kind == "u8":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 256:
            raise ValueError("%r is not a u8" % (value,))
        out.append(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("%r is not a bool" % (value,))
        out.append(1 if value else 0)
    elif isinstance(kind, tuple) and kind[0] == "option":
        if value is None:
            out.append(0)
        else:
            out.append(1)
            _write(out, kind[1], value)
    elif isinstance(kind, tuple) and kind[0] == "array":
        _, item, n = kind
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise ValueError("%r is not a list of exactly %d elements" % (value, n))
        for element in value:
            _write(out, item, element)
    elif isinstance(kind, tuple):
        what, capacity = kind
        items = value.encode("utf-8") if what == "str" else value
        if len(items) > capacity:
            raise ValueError("%d elements where at most %d fit" % (len(items), capacity))
        _varint(out, len(items), 32)
        if what == "q16s":
            for item in items:
                _zigzag(out, item)
        else:
            out += bytes(items)
    elif kind in STRUCTS:
        _write_fields(out, STRUCTS[kind], value)
    elif kind in ENUMS:
        _write_enum(out, kind, value)
    else:
        raise ValueError("unknown type %r" % (kind,))


def _write_fields(out, fields, value):
    if not isinstance(value, dict) or set(value) != {name for name, _ in fields}:
        raise ValueError("%r does not have the fields %s" % (value, [n for n, _ in fields]))
    for name, kind in fields:
        _write(out, kind, value[name])


def _write_enum(out, enum, value):
    name, content = (value, None) if isinstance(value, str) else _single_item(value)
    variants = ENUMS[enum]
    for index, (variant, shape) in enumerate(variants):
        if variant == name:
            break
    else:
        raise ValueError("%s has no variant %r" % (enum, name))
    _varint(out, index, 32)
    if shape is None:
        if content is not None:
            raise ValueError("%s::%s has no fields" % (enum, name))
    elif isinstance(shape, list):
        _write_fields(out, shape, content)
    else:
        _write(out, shape, content)


def _single_item(value):
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError("%r is neither a variant name nor a one-key dict" % (value,))
    return next(iter(value.items()))


class _Reader:
    """Reads values from a message; any failure is FrameError("BadMessage")."""

    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def byte(self):
        if self.pos >= len(self.data):
            raise FrameError("BadMessage", "the message ends inside a value")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self, bits):
        longest = (bits + 6) // 7
        value = 0
        for i in range(longest):
            byte = self.byte()
            value |= (byte & 0x7F) << (7 * i)
            if byte & 0x80 == 0:
                if i == longest - 1 and byte >> (bits - 7 * i):
                    raise FrameError("BadMessage", "a varint beyond u%d" % bits)
                return value
        raise FrameError("BadMessage", "a varint longer than %d bytes" % longest)

    def zigzag(self):
        u = self.varint(32)
        return (u >> 1) ^ -(u & 1)

    def read(self, kind):
        if kind in _BITS:
            return self.varint(_BITS[kind])
        if kind in ("q16", "i32"):
            return self.zigzag()
        if kind == "u8":
            return self.byte()
        if kind == "bool":
            byte = self.byte()
            if byte > 1:
                raise FrameError("BadMessage", "bool byte %d" % byte)
            return byte == 1
        if isinstance(kind, tuple) and kind[0] == "option":
            tag = self.byte()
            if tag > 1:
                raise FrameError("BadMessage", "option tag %d" % tag)
            return self.read(kind[1]) if tag == 1 else None
        if isinstance(kind, tuple) and kind[0] == "array":
            _, item, n = kind
            return [self.read(item) for _ in range(n)]
        if isinstance(kind, tuple):
            what, capacity = kind
            n = self.varint(32)
            if n > capacity:
                raise FrameError("BadMessage", "%d elements where at most %d fit" % (n, capacity))
            if what == "q16s":
                return [self.zigzag() for _ in range(n)]
            raw = bytes(self.byte() for _ in range(n))
            if what == "pixels":
                return list(raw)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError("BadMessage", "a string that is not UTF-8") from None
        if kind in STRUCTS:
            return {name: self.read(field) for name, field in STRUCTS[kind]}
        variants = ENUMS[kind]
        index = self.varint(32)
        if index >= len(variants):
            raise FrameError("BadMessage", "%s has no variant %d" % (kind, index))
        name, shape = variants[index]
        if shape is None:
            return name
        if isinstance(shape, list):
            return {name: {field: self.read(t) for field, t in shape}}
        return {name: self.read(shape)}


def encode_message(value, kind="Request"):
    """The postcard bytes of `value` (a Request unless `kind` says otherwise)."""
    out = bytearray()
    _write(out, kind, value)
    return bytes(out)


def decode_message(message, kind="Response"):
    """The value of the postcard bytes `message`; the bytes must be used up."""
    reader = _Reader(message)
    value = reader.read(kind)
    if reader.pos != len(reader.data):
        left = len(reader.data) - reader.pos
        raise FrameError("TrailingBytes", "%d bytes after the message" % left)
    return value


# --- Frames (section 2). ---


def encode_frame(value, kind="Request"):
    """The complete frame of `value`, terminating zero included."""
    message = encode_message(value, kind)
    payload = message + crc32c(message).to_bytes(4, "little")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("the payload is %d bytes, over %d" % (len(payload), MAX_PAYLOAD))
    return cobs_encode(payload) + b"\x00"


def frame_message(body):
    """The message of a frame body (the bytes before its zero), its CRC checked."""
    if not body:
        raise FrameError("EmptyFrame")
    if len(body) > MAX_FRAME:
        raise FrameError("FrameTooLong", "%d bytes" % len(body))
    payload = cobs_decode(body)
    if len(payload) < 4:
        raise FrameError("BadCrc", "%d bytes cannot hold a CRC" % len(payload))
    message, crc = payload[:-4], int.from_bytes(payload[-4:], "little")
    if crc32c(message) != crc:
        raise FrameError("BadCrc", "CRC %08x, computed %08x" % (crc, crc32c(message)))
    return message


def decode_frame(body, kind="Response"):
    """The value a frame body carries (a Response unless `kind` says otherwise)."""
    return decode_message(frame_message(body), kind)


def q16_from_real(x):
    """`x` in Q16: x * 65536 rounded to nearest, halves away from zero, saturated
    (NaN gives 0)."""
    if x != x:
        return 0
    scaled = abs(x) * Q16_ONE + 0.5
    q = int(scaled) if scaled < 1 << 32 else 1 << 32
    q = -q if x < 0 else q
    return max(-(1 << 31), min((1 << 31) - 1, q))


# --- The port (section 1). ---


class _RawTty:
    """A serial device or pty opened with os.open and put in raw mode with termios."""

    def __init__(self, path, baud):
        import termios

        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(self.fd)
            # What cfmakeraw sets: no input or output processing, no echo, no line
            # editing or signals, 8 bits, no parity; plus CLOCAL | CREAD and no flow
            # control.
            iflag &= ~(
                termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
                | termios.IXOFF
            )
            oflag &= ~termios.OPOST
            lflag &= ~(
                termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN
            )
            cflag &= ~(
                termios.CSIZE | termios.PARENB | termios.CSTOPB | getattr(termios, "CRTSCTS", 0)
            )
            cflag |= termios.CS8 | termios.CLOCAL | termios.CREAD
            speed = getattr(termios, "B%d" % baud, ispeed)
            cc[termios.VMIN] = 0
            cc[termios.VTIME] = 0
            attributes = [iflag, oflag, cflag, lflag, speed, speed, cc]
            termios.tcsetattr(self.fd, termios.TCSANOW, attributes)
            termios.tcflush(self.fd, termios.TCIFLUSH)
        except BaseException:
            os.close(self.fd)
            raise
        self.description = "os.open + termios raw mode"

    def read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""

    def write(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)

    def close(self):
        os.close(self.fd)


class _PySerial:
    """The port opened with pyserial."""

    def __init__(self, serial, path, baud):
        self.port = serial.Serial(
            path,
            baudrate=baud,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            xonxoff=False,
            rtscts=False,
            dsrdtr=False,
            timeout=0.25,
        )
        self.port.reset_input_buffer()
        self.description = "pyserial %s" % getattr(serial, "__version__", "?")

    def read(self, timeout):
        if self.port.timeout != timeout:
            self.port.timeout = max(0.0, timeout)
        return self.port.read(max(1, self.port.in_waiting))

    def write(self, data):
        self.port.write(data)
        self.port.flush()

    def close(self):
        self.port.close()


def open_port(path, baud=115200, raw_tty=False):
    """Opens `path` 8N1 without flow control: with pyserial if it is installed and
    `raw_tty` is false, else with os.open and termios."""
    if not raw_tty:
        try:
            import serial
        except ImportError:
            pass
        else:
            return _PySerial(serial, path, baud)
    return _RawTty(path, baud)


# --- The client (section 11). ---


class Client:
    """One request, one response, over a serial port (section 11)."""

    def __init__(self, path, timeout=DEFAULT_TIMEOUT, baud=115200, raw_tty=False):
        self.port = open_port(path, baud, raw_tty)
        self.timeout = timeout
        self._pending = bytearray()
        self._skipping = False

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def close(self):
        self.port.close()

    def send(self, value):
        """Writes the frame of the request `value`."""
        self.port.write(encode_frame(value))

    def read_body(self):
        """The body of the next non-empty frame on the line, within the timeout."""
        started = time.monotonic()
        deadline = started + self.timeout
        while True:
            end = self._pending.find(0)
            if end >= 0:
                body = bytes(self._pending[:end])
                del self._pending[: end + 1]
                if self._skipping:
                    self._skipping = False
                    detail = "a response frame longer than %d bytes" % MAX_FRAME
                    raise FrameError("FrameTooLong", detail)
                if body:
                    return body
                continue
            if len(self._pending) > MAX_FRAME:
                self._pending.clear()
                self._skipping = True
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(
                    "no response within %.1f s (%d bytes of a frame received)"
                    % (now - started, len(self._pending))
                )
            self._pending += self.port.read(min(0.25, deadline - now))

    def request(self, value):
        """Sends the request `value`; returns the response, an Error included."""
        self.send(value)
        return decode_frame(self.read_body())

    def _answer(self, request, expected):
        response = self.request(request)
        return _unwrap(response, expected)

    def info(self):
        """The device's DeviceInfo; VersionError if it speaks another version."""
        self.send("Info")
        message = frame_message(self.read_body())
        if message[:1] == b"\x00":
            version = _Reader(message[1:]).varint(16)
            if version != PROTOCOL_VERSION:
                raise VersionError(
                    "the device speaks protocol version %d; this client version %d"
                    % (version, PROTOCOL_VERSION)
                )
        return _unwrap(decode_message(message), "Info")

    def encode(self, image):
        """Encoded for the image (bytes, or a list of ints 0..255)."""
        return self._answer({"Encode": {"image": list(image)}}, "Encoded")

    def reconstruct(self, image):
        """Reconstructed for the image."""
        return self._answer({"Reconstruct": {"image": list(image)}}, "Reconstructed")

    def denoise(self, image):
        """Denoised for the image: decoder(mu), without the score."""
        return self._answer({"Denoise": {"image": list(image)}}, "Denoised")

    def compress(self, image, bits):
        """Compressed for the image: mu packed at `bits` (1 to 8) bits per dimension."""
        return self._answer({"Compress": {"image": list(image), "bits": bits}}, "Compressed")

    def decode(self, z):
        """Generated for the latent vector `z` (Q16 ints)."""
        return self._answer({"Decode": {"z": list(z)}}, "Generated")

    def generate(self, seed, temperature=1.0):
        """Generated for `seed` at `temperature` (a real number; Q16 on the wire)."""
        request = {"Generate": {"seed": seed, "temperature": q16_from_real(temperature)}}
        return self._answer(request, "Generated")

    def set_threshold(self, threshold):
        """Sets the anomaly threshold (Q16 int); returns the one now in force."""
        return self._answer({"SetThreshold": {"threshold": threshold}}, "ThresholdSet")["threshold"]

    def stats(self):
        """The device's Stats."""
        return self._answer("Stats", "Stats")

    def calibrate(self, frames):
        """Starts a calibration of the fault detector on the next `frames` scored images
        (at least 4; 0 cancels the one under way); returns the frames it will take."""
        return self._answer({"Calibrate": {"frames": frames}}, "Calibrating")["frames"]

    def calibrate_threshold(self, frames):
        """Starts a threshold-only calibration on the next `frames` scored images: the
        terms of the detector in force stay, only the threshold is set (at least 4; 0
        cancels the one under way); returns the frames it will take."""
        return self._answer({"CalibrateThreshold": {"frames": frames}}, "Calibrating")["frames"]

    def detector(self):
        """The DetectorState: the detector in force (None if there is none) and the frames
        the calibration under way still needs."""
        return self._answer("Detector", "Detector")


def _unwrap(response, expected):
    name, content = _single_item(response)
    if name == "Error":
        raise DeviceError(content)
    if name != expected:
        raise FrameError("BadMessage", "expected %s, the device answered %s" % (expected, name))
    return content


# --- The command line. ---


def _print(value):
    print(json.dumps(value, separators=(",", ":")), flush=True)


def _read_image(path):
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _hex_bytes(text):
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise SystemExit("tinyvae_client: error: %r is not hex" % text) from None


def _run(args):
    """Runs the command; returns the exit status."""
    if args.command == "frame":
        for text in args.requests:
            print(encode_frame(json.loads(text)).hex())
        return 0
    if args.command == "unframe":
        for text in args.frames:
            frame = _hex_bytes("".join(text.split()))
            _print(decode_frame(frame[:-1] if frame.endswith(b"\x00") else frame))
        return 0
    if not args.port:
        raise SystemExit("tinyvae_client: error: %s needs --port" % args.command)
    if args.command == "info":
        requests = ["Info"]
    elif args.command == "encode":
        requests = [{"Encode": {"image": list(_read_image(p))}} for p in args.images]
    elif args.command == "generate":
        temperature = q16_from_real(args.temperature)
        requests = [{"Generate": {"seed": s, "temperature": temperature}} for s in args.seeds]
    elif args.command == "calibrate":
        kind = "CalibrateThreshold" if args.threshold_only else "Calibrate"
        requests = [{kind: {"frames": args.frames}}]
    elif args.command == "detector":
        requests = ["Detector"]
    else:
        requests = [json.loads(text) for text in args.requests]
    status = 0
    with Client(args.port, args.timeout, args.baud, args.raw_tty) as device:
        if args.verbose:
            print("opened %s with %s" % (args.port, device.port.description), file=sys.stderr)
        for request in requests:
            if request == "Info":
                response = {"Info": device.info()}
            else:
                response = device.request(request)
            if isinstance(response, dict) and "Error" in response:
                status = 2
            _print(response)
    return status


def _parser():
    parser = argparse.ArgumentParser(
        description="Talk to the tinyvae firmware over its serial line (docs/protocol.md)."
    )
    parser.add_argument("--port", help="the serial device or the emulator's pty")
    parser.add_argument("--baud", type=int, default=115200, help="default 115200")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds each request may take"
    )
    parser.add_argument(
        "--raw-tty", action="store_true", help="open the port with os.open + termios, not pyserial"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="say how the port was opened")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="describe the device and its model")
    encode = sub.add_parser("encode", help="encode and score images")
    encode.add_argument("images", nargs="+", help="raw pixel files ('-': stdin)")
    generate = sub.add_parser("generate", help="sample the prior and decode")
    generate.add_argument("seeds", nargs="+", type=int, help="seeds (u64)")
    generate.add_argument("--temperature", type=float, default=1.0, help="default 1.0")
    calibrate = sub.add_parser(
        "calibrate", help="take the next scored images as normal and fit the fault detector"
    )
    calibrate.add_argument(
        "--frames", type=int, required=True, help="frames to take (u16; at least 4, 0 cancels)"
    )
    calibrate.add_argument(
        "--threshold-only",
        action="store_true",
        help="keep the detector's terms and set only its threshold",
    )
    sub.add_parser("detector", help="the fault detector in force and the calibration's progress")
    request = sub.add_parser("request", help="send requests given as JSON")
    request.add_argument("requests", nargs="+")
    frame = sub.add_parser("frame", help="print the frames of requests given as JSON, in hex")
    frame.add_argument("requests", nargs="+")
    unframe = sub.add_parser("unframe", help="decode response frames given in hex")
    unframe.add_argument("frames", nargs="+")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except FrameError as e:
        print("tinyvae_client: frame error: %s" % e, file=sys.stderr)
    except (DeviceError, VersionError, TimeoutError, OSError, ValueError) as e:
        print("tinyvae_client: error: %s" % e, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
