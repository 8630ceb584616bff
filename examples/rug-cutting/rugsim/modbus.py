"""A thin ctypes binding of libmodbus (Debian's libmodbus5) for Modbus TCP: a client for the
controller and a multi-client server for the simulated PLC.

Only what the line needs is bound. Every failing call raises a ModbusError subclass carrying libmodbus'
own message (modbus_strerror), so a caller can tell a dropped link (ModbusLinkError: reconnect) from a
request the device refused (ModbusDeviceException: a bug in the request, reconnecting will not help).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import os
import select

MODBUS_ENOBASE = 112345678
TCP_MAX_ADU = 260
_EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                    4: "server device failure", 5: "acknowledge", 6: "server busy",
                    8: "memory parity error", 10: "gateway path unavailable",
                    11: "gateway target failed to respond"}


class ModbusError(Exception):
    """A libmodbus call failed. `errno` is the raw code (a system errno, or MODBUS_ENOBASE + n)."""

    def __init__(self, what: str, code: int):
        self.errno = code
        super().__init__(f"{what}: {_strerror(code)} (errno {code})")


class ModbusLinkError(ModbusError):
    """The connection is gone or did not answer in time: close, reconnect, retry."""


class ModbusDeviceException(ModbusError):
    """The device answered with a Modbus exception (e.g. illegal data address)."""

    @property
    def exception_code(self) -> int:
        return self.errno - MODBUS_ENOBASE


class ModbusProtocolError(ModbusError):
    """A malformed or unexpected answer (bad data, wrong transaction): treat the link as suspect."""


class _Mapping(ctypes.Structure):
    _fields_ = [("nb_bits", ctypes.c_int), ("start_bits", ctypes.c_int),
                ("nb_input_bits", ctypes.c_int), ("start_input_bits", ctypes.c_int),
                ("nb_input_registers", ctypes.c_int), ("start_input_registers", ctypes.c_int),
                ("nb_registers", ctypes.c_int), ("start_registers", ctypes.c_int),
                ("tab_bits", ctypes.POINTER(ctypes.c_uint8)),
                ("tab_input_bits", ctypes.POINTER(ctypes.c_uint8)),
                ("tab_input_registers", ctypes.POINTER(ctypes.c_uint16)),
                ("tab_registers", ctypes.POINTER(ctypes.c_uint16))]


def _load() -> ctypes.CDLL:
    names = ["libmodbus.so.5", ctypes.util.find_library("modbus")]
    errors = []
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise ImportError("libmodbus is not installed (Debian: apt-get install libmodbus5 or "
                          f"libmodbus-dev): {'; '.join(errors) or 'not found'}")
    p, i, u16p, u8p = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint16), ctypes.POINTER(ctypes.c_uint8)
    sigs = {
        "modbus_new_tcp": (p, [ctypes.c_char_p, i]),
        "modbus_connect": (i, [p]),
        "modbus_close": (None, [p]),
        "modbus_free": (None, [p]),
        "modbus_strerror": (ctypes.c_char_p, [i]),
        "modbus_set_response_timeout": (i, [p, ctypes.c_uint32, ctypes.c_uint32]),
        "modbus_set_byte_timeout": (i, [p, ctypes.c_uint32, ctypes.c_uint32]),
        "modbus_set_indication_timeout": (i, [p, ctypes.c_uint32, ctypes.c_uint32]),
        "modbus_set_socket": (i, [p, i]),
        "modbus_get_socket": (i, [p]),
        "modbus_set_slave": (i, [p, i]),
        "modbus_read_registers": (i, [p, i, i, u16p]),
        "modbus_read_input_registers": (i, [p, i, i, u16p]),
        "modbus_write_register": (i, [p, i, ctypes.c_uint16]),
        "modbus_write_registers": (i, [p, i, i, u16p]),
        "modbus_tcp_listen": (i, [p, i]),
        "modbus_tcp_accept": (i, [p, ctypes.POINTER(i)]),
        "modbus_receive": (i, [p, u8p]),
        "modbus_reply": (i, [p, u8p, i, ctypes.POINTER(_Mapping)]),
        "modbus_mapping_new": (ctypes.POINTER(_Mapping), [i, i, i, i]),
        "modbus_mapping_free": (None, [ctypes.POINTER(_Mapping)]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


_lib = _load()


def _strerror(code: int) -> str:
    if code > MODBUS_ENOBASE and code - MODBUS_ENOBASE in _EXCEPTION_NAMES:
        return "device exception: " + _EXCEPTION_NAMES[code - MODBUS_ENOBASE]
    msg = _lib.modbus_strerror(code)
    return msg.decode("utf-8", "replace") if msg else f"unknown error {code}"


_LINK_ERRNOS = {errno_mod.ECONNREFUSED, errno_mod.ECONNRESET, errno_mod.ECONNABORTED, errno_mod.EPIPE,
                errno_mod.ETIMEDOUT, errno_mod.EBADF, errno_mod.ENOTCONN, errno_mod.EHOSTUNREACH,
                errno_mod.ENETUNREACH, errno_mod.EINTR, errno_mod.EAGAIN}


def _raise(what: str) -> None:
    code = ctypes.get_errno()
    if MODBUS_ENOBASE < code <= MODBUS_ENOBASE + 11:
        raise ModbusDeviceException(what, code)
    if code > MODBUS_ENOBASE:
        raise ModbusProtocolError(what, code)
    if code in _LINK_ERRNOS or code == 0:
        raise ModbusLinkError(what, code or errno_mod.ECONNRESET)
    raise ModbusError(what, code)


def _u16_array(values) -> ctypes.Array:
    vals = [int(v) for v in values]
    for v in vals:
        if not 0 <= v <= 0xFFFF:
            raise ValueError(f"register value {v} is outside 0..65535")
    return (ctypes.c_uint16 * len(vals))(*vals)


class ModbusTcpClient:
    """One Modbus TCP connection. Not thread-safe: use it from one thread."""

    def __init__(self, host: str, port: int, timeout_s: float = 0.2):
        self.host, self.port = host, int(port)
        self._ctx = _lib.modbus_new_tcp(host.encode(), self.port)
        if not self._ctx:
            _raise(f"modbus_new_tcp({host}:{port})")
        self.set_timeout(timeout_s)
        self.connected = False

    def set_timeout(self, seconds: float) -> None:
        sec, usec = int(seconds), int(round((seconds - int(seconds)) * 1e6))
        if _lib.modbus_set_response_timeout(self._ctx, sec, usec) != 0:
            _raise("modbus_set_response_timeout")

    def connect(self) -> None:
        if self.connected:
            return
        if _lib.modbus_connect(self._ctx) != 0:
            code = ctypes.get_errno()
            raise ModbusLinkError(f"connect to {self.host}:{self.port}", code or errno_mod.ECONNREFUSED)
        self.connected = True

    def close(self) -> None:
        if self._ctx and self.connected:
            _lib.modbus_close(self._ctx)
        self.connected = False

    def free(self) -> None:
        self.close()
        if self._ctx:
            _lib.modbus_free(self._ctx)
            self._ctx = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.free()

    def _check_open(self, what: str) -> None:
        if not self._ctx:
            raise ModbusLinkError(what + " on a freed client", errno_mod.EBADF)
        if not self.connected:
            raise ModbusLinkError(what + " while not connected", errno_mod.ENOTCONN)

    def _read(self, fn, what: str, addr: int, count: int) -> list[int]:
        self._check_open(what)
        buf = (ctypes.c_uint16 * count)()
        rc = fn(self._ctx, addr, count, buf)
        if rc != count:
            self._fail(f"{what}({addr}, {count})", rc)
        return list(buf)

    def _fail(self, what: str, rc: int) -> None:
        try:
            if rc >= 0:  # short answer: libmodbus leaves errno as is
                raise ModbusProtocolError(what + f" returned {rc}", MODBUS_ENOBASE + 14)
            _raise(what)
        except (ModbusLinkError, ModbusProtocolError):
            # A timed-out or garbled exchange leaves the stream out of step; only a new
            # connection is sure to be clean.
            self.close()
            raise

    def read_holding(self, addr: int, count: int) -> list[int]:
        return self._read(_lib.modbus_read_registers, "read holding registers", addr, count)

    def read_input(self, addr: int, count: int) -> list[int]:
        return self._read(_lib.modbus_read_input_registers, "read input registers", addr, count)

    def write_registers(self, addr: int, values) -> None:
        self._check_open("write registers")
        arr = _u16_array(values)
        rc = _lib.modbus_write_registers(self._ctx, addr, len(arr), arr)
        if rc != len(arr):
            self._fail(f"write registers({addr}, {len(arr)})", rc)

    def write_register(self, addr: int, value: int) -> None:
        self.write_registers(addr, [value])


class ModbusTcpServer:
    """Modbus TCP server on a register map, for any number of clients, driven by the caller's loop.

    `fds()` lists the sockets to wait on; `service(ready)` accepts new clients and answers one
    request from each ready client. `on_request(client_fd)` (if given) is called after each answered
    request so the PLC logic can react to a write at once. `close_all()` drops the listener and every
    client (a PLC restart); `open()` listens again on the same port.
    """

    def __init__(self, host: str, port: int, holding: int, inputs: int, on_request=None):
        self.host, self.port = host, int(port)
        self._ctx = _lib.modbus_new_tcp(host.encode(), self.port)
        if not self._ctx:
            _raise(f"modbus_new_tcp({host}:{port})")
        # A client that stalls half-way through a request must not freeze the world for long.
        _lib.modbus_set_byte_timeout(self._ctx, 0, 50_000)
        _lib.modbus_set_indication_timeout(self._ctx, 0, 50_000)
        self._map = _lib.modbus_mapping_new(0, 0, holding, inputs)
        if not self._map:
            _raise("modbus_mapping_new")
        m = self._map.contents
        self.holding = m.tab_registers      # ctypes pointers: index like lists, 0..holding-1
        self.inputs = m.tab_input_registers
        self.n_holding, self.n_inputs = holding, inputs
        self.on_request = on_request
        self._listen_fd = -1
        self.clients: set[int] = set()
        self._buf = (ctypes.c_uint8 * TCP_MAX_ADU)()
        self.requests = 0

    @property
    def listening(self) -> bool:
        return self._listen_fd >= 0

    def open(self, backlog: int = 8) -> None:
        if self.listening:
            return
        fd = _lib.modbus_tcp_listen(self._ctx, backlog)
        if fd < 0:
            _raise(f"listen on {self.host}:{self.port}")
        self._listen_fd = fd

    def fds(self) -> list[int]:
        return ([self._listen_fd] if self.listening else []) + sorted(self.clients)

    def service(self, ready) -> None:
        for fd in ready:
            if fd == self._listen_fd:
                self._accept()
            elif fd in self.clients:
                self._answer(fd)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Wait up to timeout_s for activity and service it (for simple loops and tests)."""
        fds = self.fds()
        if not fds:
            return
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout_s))
        self.service(ready)

    def _accept(self) -> None:
        s = ctypes.c_int(self._listen_fd)
        fd = _lib.modbus_tcp_accept(self._ctx, ctypes.byref(s))
        if fd >= 0:
            self.clients.add(fd)

    def _answer(self, fd: int) -> None:
        _lib.modbus_set_socket(self._ctx, fd)
        rc = _lib.modbus_receive(self._ctx, self._buf)
        if rc == 0:
            return  # addressed to another unit: ignored, as the standard says
        if rc < 0:
            self._drop(fd)  # closed by the client, or garbage: either way the stream is done
            return
        if _lib.modbus_reply(self._ctx, self._buf, rc, self._map) < 0:
            self._drop(fd)
            return
        self.requests += 1
        if self.on_request:
            self.on_request(fd)

    def _drop(self, fd: int) -> None:
        self.clients.discard(fd)
        try:
            os.close(fd)
        except OSError:
            pass

    def close_all(self) -> None:
        for fd in list(self.clients):
            self._drop(fd)
        if self.listening:
            try:
                os.close(self._listen_fd)
            except OSError:
                pass
            self._listen_fd = -1

    def free(self) -> None:
        self.close_all()
        if self._map:
            _lib.modbus_mapping_free(self._map)
            self._map = None
        if self._ctx:
            _lib.modbus_set_socket(self._ctx, -1)
            _lib.modbus_free(self._ctx)
            self._ctx = None


def to_u32_words(value: int) -> tuple[int, int]:
    """A signed 32-bit value as (high word, low word): the register pair order used on this line."""
    v = int(value)
    if not -(1 << 31) <= v < (1 << 31):
        raise ValueError(f"{value} does not fit in a signed 32-bit register pair")
    v &= 0xFFFFFFFF
    return (v >> 16) & 0xFFFF, v & 0xFFFF


def from_u32_words(hi: int, lo: int, signed: bool = True) -> int:
    v = ((int(hi) & 0xFFFF) << 16) | (int(lo) & 0xFFFF)
    if signed and v & 0x80000000:
        v -= 1 << 32
    return v
