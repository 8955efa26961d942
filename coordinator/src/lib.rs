//! The coordinator role: client protocol, catalog, query lifecycle and admission. Not built
//! yet; it will embed `shoal-state-store` as its replicated state.
