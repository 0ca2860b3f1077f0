"""The SIP edge: Kamailio in front of the UA workers (config rendering and process control).

See docs/edge.md.
"""
