//! The order: what `POST /api/orders` accepts, how it is validated, and the payload every
//! saga event carries. Money is in integer minor units (cents).

use serde::{Deserialize, Serialize};

/// A new order as posted by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrder {
    pub customer_id: String,
    pub currency: String,
    pub items: Vec<Item>,
    pub ship_to: ShipTo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShipTo {
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
}

/// The payload of `order.created` and of every step request: the order and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPayload {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub total: i64,
    pub items: Vec<Item>,
    pub ship_to: ShipTo,
}

/// A field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

const MAX_ITEMS: usize = 100;
const MAX_QUANTITY: i64 = 1_000_000;
const MAX_UNIT_PRICE: i64 = 10_000_000_000;

impl NewOrder {
    /// Checks the business rules; returns every invalid field.
    pub fn validate(&self) -> Result<i64, Vec<Invalid>> {
        let mut invalid = Vec::new();
        let mut bad = |field: String, message: &str| invalid.push(Invalid { field, message: message.to_string() });
        let id = self.customer_id.trim();
        if id.is_empty() || id.chars().count() > 128 {
            bad("customerId".into(), "must be 1 to 128 characters");
        }
        // A NUL byte cannot be stored as text (PostgreSQL refuses it): the client's mistake.
        let texts = std::iter::once(("customerId".to_string(), &self.customer_id))
            .chain(self.items.iter().enumerate().map(|(i, item)| (format!("items[{i}].sku"), &item.sku)));
        for (field, text) in texts {
            if text.contains('\0') {
                bad(field, "must not contain NUL characters");
            }
        }
        if !(self.currency.len() == 3 && self.currency.chars().all(|c| c.is_ascii_uppercase())) {
            bad("currency".into(), "must be an ISO 4217 code of three capital letters, like \"EUR\"");
        }
        if self.items.is_empty() {
            bad("items".into(), "must hold at least one item");
        }
        if self.items.len() > MAX_ITEMS {
            bad("items".into(), "must hold at most 100 items");
        }
        let mut total: i64 = 0;
        for (i, item) in self.items.iter().enumerate() {
            if item.sku.trim().is_empty() || item.sku.chars().count() > 64 {
                bad(format!("items[{i}].sku"), "must be 1 to 64 characters");
            }
            if item.quantity < 1 || item.quantity > MAX_QUANTITY {
                bad(format!("items[{i}].quantity"), "must be between 1 and 1000000");
            }
            if item.unit_price < 0 || item.unit_price > MAX_UNIT_PRICE {
                bad(format!("items[{i}].unitPrice"), "must be between 0 and 10000000000 minor units");
            }
            total =
                total.saturating_add(item.quantity.clamp(0, MAX_QUANTITY) * item.unit_price.clamp(0, MAX_UNIT_PRICE));
        }
        let country = &self.ship_to.country;
        if !(country.len() == 2 && country.chars().all(|c| c.is_ascii_uppercase())) {
            bad("shipTo.country".into(), "must be an ISO 3166-1 alpha-2 code of two capital letters, like \"DE\"");
        }
        if invalid.is_empty() {
            Ok(total)
        } else {
            Err(invalid)
        }
    }
}
