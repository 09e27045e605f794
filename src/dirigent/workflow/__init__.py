"""The pure execution core: events in, history and commands out.

It never performs I/O, reads a clock or draws random numbers; the shell passes
time and randomness in and carries out the commands it returns.
"""
