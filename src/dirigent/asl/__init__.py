"""Amazon States Language: parse, validate and evaluate, with no I/O.

This package must never read a clock, draw random numbers, touch a file or a
socket: everything it needs comes in as arguments.
"""
