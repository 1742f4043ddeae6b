//! Small stable codes for the unit enums of the positional records: a ledger history entry
//! stores `delivered` as one byte instead of ten.
//!
//! A field opts in with `#[serde(with = "coded")]` (`coded::opt` for an `Option`). In the
//! store's MessagePack the value is its code; in text formats (JSON, templates) it stays its
//! snake_case name, as the enum's own serde impl writes it. Reading accepts either, so rows
//! written with names (schemas 1–3) read unchanged.
//!
//! **A code is forever.** A new variant takes the next unused number; a code is never reused
//! or renumbered (`codes_never_change` below lists them all). Codes are only used on fields of
//! positional records, never inside an internally tagged enum (`Why`), whose buffered content
//! would ask for a name.

use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Unexpected, Visitor};
use serde::{Deserializer, Serialize, Serializer};

use super::records::{
    ActionType, CardState, DeliveryState, PartKind, PartState, ShipMethod, StockAction,
};
use crate::order::{OrderStatus, ShipMode};

/// A unit enum with a stable one-byte code per variant.
pub(super) trait Coded: Sized + Copy + Serialize + DeserializeOwned {
    fn code(self) -> u8;
    fn from_code(code: u8) -> Option<Self>;
}

/// `coded!(Type { Variant = code, … })`: the match in both directions, exhaustive, so a new
/// variant does not compile until it has a code.
macro_rules! coded {
    ($ty:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        impl Coded for $ty {
            fn code(self) -> u8 {
                match self {
                    $($ty::$variant => $code,)+
                }
            }

            fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

coded!(OrderStatus {
    PendingPayment = 0,
    PendingShip = 1,
    Shipped = 2,
    Completed = 3,
    Closed = 4,
    Refunding = 5,
    Refunded = 6,
});
coded!(DeliveryState {
    Planned = 0,
    Reserved = 1,
    Scheduled = 2,
    Sending = 3,
    Sent = 4,
    Confirming = 5,
    Confirmed = 6,
    Delivered = 7,
    FailedSafe = 8,
    NeedsHuman = 9,
    Manual = 10,
    ShippedManually = 11,
    Cancelled = 12,
});
coded!(ShipMode {
    SendThenConfirm = 0,
    ConfirmThenSend = 1,
    SendOnly = 2,
    ConfirmOnly = 3,
});
coded!(ShipMethod {
    Auto = 0,
    Manual = 1,
});
coded!(ActionType {
    Auto = 0,
    Manual = 1,
    System = 2,
});
coded!(PartKind {
    Text = 0,
    Image = 1,
});
coded!(PartState {
    Pending = 0,
    Sending = 1,
    Sent = 2,
    Unknown = 3,
});
coded!(CardState {
    Available = 0,
    Reserved = 1,
    Delivered = 2,
    Revoked = 3,
});
coded!(StockAction {
    Sold = 0,
    Restock = 1,
    Adjust = 2,
    Reserve = 3,
    Release = 4,
});

pub(super) fn serialize<T: Coded, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        v.serialize(s)
    } else {
        s.serialize_u8(v.code())
    }
}

pub(super) fn deserialize<'de, T: Coded, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(CodeOrName(PhantomData))
}

struct CodeOrName<T>(PhantomData<T>);

impl<T: Coded> Visitor<'_> for CodeOrName<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a variant's code or name")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        u8::try_from(v)
            .ok()
            .and_then(T::from_code)
            .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::deserialize(v.into_deserializer())
    }
}

/// `#[serde(default, with = "coded::opt")]` for an `Option` of a coded enum.
pub(super) mod opt {
    use super::*;

    struct Code<'a, T>(&'a T);

    impl<T: Coded> Serialize for Code<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, s)
        }
    }

    pub(in crate::store) fn serialize<T: Coded, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&Code(v)),
            None => s.serialize_none(),
        }
    }

    pub(in crate::store) fn deserialize<'de, T: Coded, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        d.deserialize_option(Maybe(PhantomData))
    }

    struct Maybe<T>(PhantomData<T>);

    impl<'de, T: Coded> Visitor<'de> for Maybe<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a variant's code or name, or nothing")
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code as it is stored: a failure here means a stored row would change meaning.
    fn check<T: Coded + PartialEq + std::fmt::Debug>(table: &[(T, u8, &str)]) {
        for (variant, code, name) in table {
            assert_eq!(variant.code(), *code, "{variant:?}");
            assert_eq!(T::from_code(*code), Some(*variant));
            assert_eq!(serde_json::to_value(variant).unwrap(), *name);
        }
    }

    #[test]
    fn codes_never_change() {
        use DeliveryState as D;
        check(&[
            (OrderStatus::PendingPayment, 0, "pending_payment"),
            (OrderStatus::PendingShip, 1, "pending_ship"),
            (OrderStatus::Shipped, 2, "shipped"),
            (OrderStatus::Completed, 3, "completed"),
            (OrderStatus::Closed, 4, "closed"),
            (OrderStatus::Refunding, 5, "refunding"),
            (OrderStatus::Refunded, 6, "refunded"),
        ]);
        check(&[
            (D::Planned, 0, "planned"),
            (D::Reserved, 1, "reserved"),
            (D::Scheduled, 2, "scheduled"),
            (D::Sending, 3, "sending"),
            (D::Sent, 4, "sent"),
            (D::Confirming, 5, "confirming"),
            (D::Confirmed, 6, "confirmed"),
            (D::Delivered, 7, "delivered"),
            (D::FailedSafe, 8, "failed_safe"),
            (D::NeedsHuman, 9, "needs_human"),
            (D::Manual, 10, "manual"),
            (D::ShippedManually, 11, "shipped_manually"),
            (D::Cancelled, 12, "cancelled"),
        ]);
        check(&[
            (ShipMode::SendThenConfirm, 0, "send_then_confirm"),
            (ShipMode::ConfirmThenSend, 1, "confirm_then_send"),
            (ShipMode::SendOnly, 2, "send_only"),
            (ShipMode::ConfirmOnly, 3, "confirm_only"),
        ]);
        check(&[
            (ShipMethod::Auto, 0, "auto"),
            (ShipMethod::Manual, 1, "manual"),
        ]);
        check(&[
            (ActionType::Auto, 0, "auto"),
            (ActionType::Manual, 1, "manual"),
            (ActionType::System, 2, "system"),
        ]);
        check(&[(PartKind::Text, 0, "text"), (PartKind::Image, 1, "image")]);
        check(&[
            (PartState::Pending, 0, "pending"),
            (PartState::Sending, 1, "sending"),
            (PartState::Sent, 2, "sent"),
            (PartState::Unknown, 3, "unknown"),
        ]);
        check(&[
            (CardState::Available, 0, "available"),
            (CardState::Reserved, 1, "reserved"),
            (CardState::Delivered, 2, "delivered"),
            (CardState::Revoked, 3, "revoked"),
        ]);
        check(&[
            (StockAction::Sold, 0, "sold"),
            (StockAction::Restock, 1, "restock"),
            (StockAction::Adjust, 2, "adjust"),
            (StockAction::Reserve, 3, "reserve"),
            (StockAction::Release, 4, "release"),
        ]);
    }

    #[test]
    fn an_unknown_code_is_an_error() {
        // A two-field row (a newtype would be read as its field alone).
        #[derive(serde::Deserialize, Debug)]
        struct Row(#[serde(with = "super")] DeliveryState, u8);
        assert!(rmp_serde::from_slice::<Row>(&[0x92, 13, 0]).is_err());
        assert!(rmp_serde::from_slice::<Row>(&[0x92, 0xa3, b'b', b'a', b'd', 0]).is_err());
        let Row(by_name, _) =
            rmp_serde::from_slice(&[0x92, 0xa4, b's', b'e', b'n', b't', 0]).unwrap();
        assert_eq!(by_name, DeliveryState::Sent);
        let Row(state, next) = rmp_serde::from_slice(&[0x92, 7, 0]).unwrap();
        assert_eq!((state, next), (DeliveryState::Delivered, 0));
    }
}
