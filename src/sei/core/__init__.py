"""The foundation every other layer stands on: errors, explicit randomness, atomic files, devices, memory, checks,
and the defaults help texts quote (:mod:`sei.core.defaults`).

Nothing here imports another part of ``sei``.
"""
