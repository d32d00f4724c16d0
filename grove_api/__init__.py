"""Grove's API as pure Python: models, constants, names. No I/O lives here.

The webhook, the reconciler, grove-initc and the tests all import this package; it imports none of them.
"""
