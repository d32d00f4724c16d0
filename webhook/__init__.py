"""Admission webhooks (aiohttp over TLS): PodCliqueSet defaulting and validation, managed-resource
protection, and the Pod webhook that gates and prepares every managed pod."""
