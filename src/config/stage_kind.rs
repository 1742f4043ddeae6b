//! The stage vocabulary: one [`StageKind`] per kind of pipeline stage, declared in the
//! canonical order (ingest → classify → stock-check → delay → ship → notify).
//!
//! That order is written here once. The validator refuses a pipeline that breaks it, and a
//! job whose stage was removed by a reload resumes at the next kind in it. The kind's name is
//! both its YAML key and what a durable job stores, so it never changes once released.

/// Declares the enum, its canonical list and its names from one table, so the order and the
/// names cannot drift apart.
macro_rules! stage_kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal,)*) => {
        /// A kind of pipeline stage. `Ord` is the canonical order (the declaration order).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum StageKind {
            $($(#[$doc])* $kind,)*
        }

        impl StageKind {
            /// Every kind, in canonical order.
            pub const ALL: &[StageKind] = &[$(StageKind::$kind,)*];

            /// The YAML key (`- stock-check: {…}`) and the name a job records.
            pub fn name(self) -> &'static str {
                match self {
                    $(StageKind::$kind => $name,)*
                }
            }
        }
    };
}

stage_kinds! {
    /// De-duplicates the event and applies the order state machine; always first.
    Ingest = "ingest",
    /// Finds the product rule: automatic or manual, virtual or physical.
    Classify = "classify",
    /// Reserves card keys or counted stock, all units or none.
    StockCheck = "stock-check",
    /// A human-looking pause before an automatic delivery.
    Delay = "delay",
    /// Sends the delivery and confirms the shipment, or hands the order over.
    Ship = "ship",
    /// Announces a finished automatic delivery.
    Notify = "notify",
}

impl StageKind {
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Whether the validator holds this kind to its place in the canonical order. `notify`
    /// may sit anywhere: it only announces what the stages before it did.
    pub fn has_fixed_place(self) -> bool {
        self != Self::Notify
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_canonical_order() {
        assert!(StageKind::ALL.windows(2).all(|w| w[0] < w[1]));
        for k in StageKind::ALL {
            assert_eq!(StageKind::parse(k.name()), Some(*k));
        }
        assert_eq!(StageKind::parse("end"), None);
        assert_eq!(StageKind::ALL.first(), Some(&StageKind::Ingest));
    }
}
