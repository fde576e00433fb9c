"""The KV layer's pure rules: the transaction encoding and stream tags (``stream``), what a
transaction does when replayed (``replay``) and the versioned state it acts on (``state``)."""
