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
}

impl Revision {
    /// Every session revision, oldest first.
    pub const ALL: [Revision; 4] = [
        Revision::V2024_11_05,
        Revision::V2025_03_26,
        Revision::V2025_06_18,
        Revision::V2025_11_25,
    ];
    /// The newest session revision, answered when the client asks for one we do not know.
    pub const LATEST: Revision = Revision::V2025_11_25;

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Revision::V2024_11_05 => "2024-11-05",
            Revision::V2025_03_26 => "2025-03-26",
            Revision::V2025_06_18 => "2025-06-18",
            Revision::V2025_11_25 => "2025-11-25",
        }
    }

    /// Parses a wire string.
    pub fn parse(s: &str) -> Option<Revision> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Version negotiation: the client's revision when we support it, else the latest.
    pub fn negotiate(requested: &str) -> Revision {
        Self::parse(requested).unwrap_or(Self::LATEST)
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
        for r in Revision::ALL {
            assert_eq!(Revision::negotiate(r.as_str()), r);
        }
        assert_eq!(Revision::negotiate("1999-01-01"), Revision::LATEST);
        assert_eq!(Revision::negotiate("2026-07-28"), Revision::LATEST);
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
