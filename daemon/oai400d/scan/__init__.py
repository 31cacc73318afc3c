"""Scans a whole byte stream for OpenAI errors, fast and in bounded memory (`oai400d classify`).

The stream is read in large chunks; only the lines around a prefilter hit (found in the raw
bytes by one compiled automaton, see classify/prefilter.py) are decoded and joined into events,
by walking back to the start of their traceback or body and then letting the same
Assembler the daemon uses decide where the event ends.

A stream that a container runtime or syslog wrapped (unwrap.py: told from its first bytes, or
named by `wrapper`) is unwrapped first, one byte stream per wrapped stream (stdout and stderr,
compose services, syslog programs), each scanned as above; a sparse map turns each stream's
line numbers back into physical ones (those of a line's first piece), and the findings of all
streams come out in file order.

The package: `scanner` (the Scanner: reading, telling the wrapper), `stream` (one byte stream:
the window held, the walk back from a hit, the events), `wrapped` (the streams of a wrapped
file and their line maps), `split` (a big file cut in two for two processes: `scan_file`).
"""

from oai400d.scan.scanner import CHUNK_SIZE, Readable, Scanner
from oai400d.scan.split import PARALLEL_MIN_BYTES, scan_file, split_point
from oai400d.scan.stream import DEFAULT_MAX_LINE, LOOKBACK_BYTES, ScanStats, decode_line

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_MAX_LINE",
    "LOOKBACK_BYTES",
    "PARALLEL_MIN_BYTES",
    "Readable",
    "ScanStats",
    "Scanner",
    "decode_line",
    "scan_file",
    "split_point",
]
