"""Admission webhooks (aiohttp over TLS): PodCliqueSet defaulting and validation (`pcs`), managed-resource
protection (`authorizer`), ClusterTopologyBinding validation (`clustertopology`), and the pod webhook that
gates and prepares every gang pod (`pods`). `admission`: AdmissionReview in and out; `server` and `tls`: the
HTTPS server with a certificate reloaded in place; `registration` and `paths`: the webhook configurations.
The rules themselves are pure functions in `grove_api` (docs/admission.md).
"""
