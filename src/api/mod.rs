//! The ClearML server API client: the only module that knows the wire format.
