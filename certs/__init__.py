"""Certificates: a small PKI built on `cryptography`.

The local cluster uses it for the apiserver's serving certificate, the admin client certificate and the
service-account signing key; the webhook server uses it for its CA and serving certificate.
"""
