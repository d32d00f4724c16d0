"""Grove's webhook paths and configuration names (a compatibility contract with Grove's chart)."""

from typing import Final

DEFAULT_PODCLIQUESET: Final = "/webhooks/default-podcliqueset"
VALIDATE_PODCLIQUESET: Final = "/webhooks/validate-podcliqueset"
AUTHORIZER: Final = "/webhooks/authorizer-webhook"
VALIDATE_CLUSTERTOPOLOGY: Final = "/webhooks/validate-clustertopology"
MUTATE_POD: Final = "/webhooks/mutate-pod"  # ours: Grove has no pod webhook
HEALTHZ: Final = "/healthz"
READYZ: Final = "/readyz"

# Names of the webhook configuration objects (and of the webhooks inside them).
DEFAULTING_CONFIG: Final = "podcliqueset-defaulting-webhook"
DEFAULTING_WEBHOOK: Final = "pcs.defaulting.webhooks.grove.io"
VALIDATING_CONFIG: Final = "podcliqueset-validating-webhook"
VALIDATING_WEBHOOK: Final = "pcs.validating.webhooks.grove.io"
AUTHORIZER_CONFIG: Final = "authorizer-webhook"
AUTHORIZER_WEBHOOK: Final = "authorizer.webhooks.grove.io"
CLUSTERTOPOLOGY_CONFIG: Final = "clustertopology-validating-webhook"
CLUSTERTOPOLOGY_WEBHOOK: Final = "clustertopology.validating.webhooks.grove.io"
POD_MUTATING_CONFIG: Final = "pod-mutating-webhook"
POD_MUTATING_WEBHOOK: Final = "pods.mutating.webhooks.grove.io"
