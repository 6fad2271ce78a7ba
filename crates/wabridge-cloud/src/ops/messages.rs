//! Sending messages and read receipts: `POST /{phone-number-id}/messages` (`cloud-api.md` §1).

use wabridge_types::ids::PhoneNumberId;
use wabridge_types::response::SendResponse;
use wabridge_types::send::{MarkRead, OutboundMessage};

use super::expect_success;
use crate::client::Client;
use crate::error::CloudError;
use crate::request::Call;

impl Client {
    /// Sends a message from a business number. The message is checked against Meta's documented limits
    /// first: a message that breaks one gives [`CloudError::Invalid`] and nothing is sent.
    ///
    /// # Errors
    /// [`CloudError::Invalid`], or any error of the call (see [`CloudError`]).
    pub async fn send_message(
        &self,
        from: &PhoneNumberId,
        message: &OutboundMessage,
    ) -> Result<SendResponse, CloudError> {
        message.validate()?;
        // Meta requires `"messaging_product":"whatsapp"`; a message parsed from an On-Premises body has none.
        if message.messaging_product.is_none() {
            let mut message = message.clone();
            message.messaging_product = Some(wabridge_types::MESSAGING_PRODUCT.to_owned());
            return self.call(Call::post(&[from.as_str(), "messages"]).json(&message)?).await;
        }
        self.call(Call::post(&[from.as_str(), "messages"]).json(message)?).await
    }

    /// Marks a received message as read (the blue ticks), with a typing indicator when
    /// [`MarkRead::with_typing_indicator`] was used. Sent with `POST` on the messages endpoint;
    /// `messaging_product` is filled in when the receipt has none (one parsed from an On-Premises body).
    ///
    /// # Errors
    /// [`CloudError::Invalid`] for a malformed receipt, or any error of the call.
    pub async fn mark_read(&self, number: &PhoneNumberId, receipt: &MarkRead) -> Result<(), CloudError> {
        receipt.validate()?;
        let call = Call::post(&[number.as_str(), "messages"]);
        let call = if receipt.messaging_product.is_none() {
            let mut receipt = receipt.clone();
            receipt.messaging_product = Some(wabridge_types::MESSAGING_PRODUCT.to_owned());
            call.json(&receipt)?
        } else {
            call.json(receipt)?
        };
        expect_success(&self.execute(&call).await?)
    }
}
