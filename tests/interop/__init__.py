"""wirecat against real peers: socat, ncat and OpenBSD nc, in both roles."""
