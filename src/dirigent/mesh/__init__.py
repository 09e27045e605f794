"""The mesh: the data plane that carries traffic between an application's services.

Its decisions (routing, splitting, load balancing, retries, breaking, outlier
ejection, faults, rate limits, header rewrites, authorization) live in the pure
:mod:`dirigent.mesh.policy` package; the manifest's ``mesh`` section is read
by :mod:`dirigent.mesh.section`. Listeners, pools and the certificate
authority are the shell around them.
"""
