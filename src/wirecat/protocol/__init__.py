"""Sans-IO protocol headers: pure parsers and encoders that never touch a socket.

* :mod:`wirecat.protocol.proxy`: the PROXY protocol v1 and v2 (HAProxy).
"""
