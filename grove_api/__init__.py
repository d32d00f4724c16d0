"""Grove's API as pure Python: no I/O, no Kubernetes or HTTP client.

- `models`: pydantic v2 models of the five kinds (camelCase on the wire, unknown fields kept); `kinds`: their
  CRD facts; `crdgen` and `openapi`: the CRDs generated from the models, with the Kubernetes types inlined.
- `constants`, `naming`: Grove's identifiers (labels, annotations, condition types, …) and generated names.
- `defaulting`, `validation`, `fielderrors`: the admission rules and their errors in the apiserver's style;
  `pod_admission`: what the pod webhook adds to a gang pod (gate, grove-initc).
- `hashing`: the pod-template and generation hashes; `conditions`: status condition helpers; `refs`: an
  object's identity; `operatorconfig`: the OperatorConfiguration file.

The other packages import it; it imports none of them (tests/unit/test_layers.py).
"""
