//! MCP protocol revisions and what each one supports.

/// A protocol revision ringmcp speaks, oldest first so `Ord` means "newer than".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Revision {
    /// 2024-11-05: the first public revision (HTTP+SSE transport).
    V2024_11_05,
    /// 2025-03-26: Streamable HTTP, batches, tool annotations, audio content.
    V2025_03_26,
    /// 2025-06-18: structured tool output, elicitation, resource links, titles; no batches.
    V2025_06_18,
    /// 2025-11-25: icons, tool input-validation errors as tool results, polling SSE.
    V2025_11_25,
    /// 2026-07-28: stateless. No session and no `initialize`: every request carries its
    /// revision, client capabilities, client info and log level in `_meta`; `server/discover`,
    /// `subscriptions/listen`, `input_required` results instead of server-to-client requests,
    /// `resultType` on every result and caching hints on list and read results.
    V2026_07_28,
}

impl Revision {
    /// Every revision ringmcp speaks, oldest first.
    pub const ALL: [Revision; 5] = [
        Revision::V2024_11_05,
        Revision::V2025_03_26,
        Revision::V2025_06_18,
        Revision::V2025_11_25,
        Revision::V2026_07_28,
    ];
    /// The session revisions (negotiated by `initialize`), oldest first.
    pub const SESSION: [Revision; 4] = [
        Revision::V2024_11_05,
        Revision::V2025_03_26,
        Revision::V2025_06_18,
        Revision::V2025_11_25,
    ];
    /// The stateless revisions (named by each request's `_meta`), oldest first: what
    /// `server/discover` lists as `supportedVersions`.
    pub const STATELESS: [Revision; 1] = [Revision::V2026_07_28];
    /// The newest session revision, answered when the client asks for one we do not know.
    pub const LATEST: Revision = Revision::V2025_11_25;

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Revision::V2024_11_05 => "2024-11-05",
            Revision::V2025_03_26 => "2025-03-26",
            Revision::V2025_06_18 => "2025-06-18",
            Revision::V2025_11_25 => "2025-11-25",
            Revision::V2026_07_28 => "2026-07-28",
        }
    }

    /// Parses a wire string (any revision, session or stateless).
    pub fn parse(s: &str) -> Option<Revision> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Version negotiation at `initialize`: the client's revision when it is a session
    /// revision we support, else the latest session revision. Never a stateless revision:
    /// a client that initializes wants a session.
    pub fn negotiate(requested: &str) -> Revision {
        Self::SESSION
            .into_iter()
            .find(|r| r.as_str() == requested)
            .unwrap_or(Self::LATEST)
    }

    /// Sessions exist: `initialize`, `ping`, `logging/setLevel` and
    /// `resources/subscribe`/`unsubscribe` are methods, server-to-client requests are sent
    /// as requests. Without sessions (2026-07-28) those methods do not exist (-32601),
    /// `server/discover` and `subscriptions/listen` do.
    pub fn has_sessions(self) -> bool {
        self <= Revision::V2025_11_25
    }
    /// Server-to-client requests (sampling, elicitation, roots) become an
    /// `input_required` result that the client answers by retrying the request.
    pub fn has_input_required(self) -> bool {
        self >= Revision::V2026_07_28
    }
    /// Every result carries `resultType` (`"complete"`, or `"input_required"`).
    pub fn has_result_type(self) -> bool {
        self >= Revision::V2026_07_28
    }
    /// List results, `resources/read` and `server/discover` carry caching hints (`ttlMs`,
    /// `cacheScope`).
    pub fn has_cache_hints(self) -> bool {
        self >= Revision::V2026_07_28
    }
    /// A resource that does not exist is invalid params (-32602 with `data.uri`) rather than
    /// the older -32002.
    pub fn resource_not_found_is_invalid_params(self) -> bool {
        self >= Revision::V2026_07_28
    }

    /// JSON-RPC batches are part of 2025-03-26 only.
    pub fn allows_batch(self) -> bool {
        self == Revision::V2025_03_26
    }
    /// Tool annotations and audio content arrived in 2025-03-26.
    pub fn has_annotations_and_audio(self) -> bool {
        self >= Revision::V2025_03_26
    }
    /// outputSchema/structuredContent, resource_link content, titles, elicitation.
    pub fn has_structured_output(self) -> bool {
        self >= Revision::V2025_06_18
    }
    /// Elicitation (server-to-client `elicitation/create`).
    pub fn has_elicitation(self) -> bool {
        self >= Revision::V2025_06_18
    }
    /// Since 2025-11-25 a tool's argument-validation failure is a tool result with isError
    /// (so a model can correct itself) rather than a -32602 protocol error.
    pub fn validation_errors_as_tool_results(self) -> bool {
        self >= Revision::V2025_11_25
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        for r in Revision::SESSION {
            assert_eq!(Revision::negotiate(r.as_str()), r);
        }
        assert_eq!(Revision::negotiate("1999-01-01"), Revision::LATEST);
        // initialize never lands on the stateless revision.
        assert_eq!(Revision::negotiate("2026-07-28"), Revision::LATEST);
        assert_eq!(Revision::parse("2026-07-28"), Some(Revision::V2026_07_28));
        for r in Revision::ALL {
            assert_eq!(Revision::parse(r.as_str()), Some(r));
            assert_eq!(r.has_sessions(), Revision::SESSION.contains(&r));
            assert_eq!(r.has_sessions(), !Revision::STATELESS.contains(&r));
        }
    }

    #[test]
    fn stateless_revision_features() {
        let r = Revision::V2026_07_28;
        assert!(r.has_input_required() && r.has_result_type() && r.has_cache_hints());
        assert!(r.resource_not_found_is_invalid_params());
        assert!(r.has_structured_output() && r.has_elicitation() && !r.allows_batch());
        for s in Revision::SESSION {
            assert!(!s.has_input_required() && !s.has_result_type() && !s.has_cache_hints());
        }
    }

    #[test]
    fn batch_only_in_2025_03_26() {
        let with: Vec<_> = Revision::ALL
            .into_iter()
            .filter(|r| r.allows_batch())
            .collect();
        assert_eq!(with, vec![Revision::V2025_03_26]);
    }
}
