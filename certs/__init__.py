"""Certificates: a small PKI built on `cryptography`.

`pki`: pure helpers (CAs, signed certificates, key pairs, PEM). `store`: where a certificate set lives (a
directory or a `kubernetes.io/tls` Secret). `manager`: `CertManager`, the operator's webhook serving
certificate, provisioned and renewed ("auto") or user-provided ("manual"). The local cluster uses `pki` for
the apiserver's serving certificate, the admin client certificate and the service-account signing key.
"""
