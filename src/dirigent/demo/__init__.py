"""``dirigent demo``: the shop of ``examples/shop`` run end to end, under trouble, and checked.

:mod:`~dirigent.demo.scenario` plans the orders and when trouble strikes,
:mod:`~dirigent.demo.invariants` judges the services' records (both pure), and
:mod:`~dirigent.demo.shop` is the shell that brings the shop up, drives it and
takes it down again.
"""
