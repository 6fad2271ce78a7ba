//! Business phone numbers, their registration and profile, and the WABA's webhook subscription
//! (`cloud-api.md` §6).

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;
use wabridge_types::ids::{PhoneNumberId, WabaId};
use wabridge_types::response::{
    BusinessProfile, Page, PhoneNumber, RegisterRequest, SubscribeRequest, SubscribedApp, ThroughputResponse,
};

use super::expect_success;
use crate::client::Client;
use crate::error::CloudError;
use crate::request::Call;

/// The profile fields read by [`Client::business_profile`].
pub const BUSINESS_PROFILE_FIELDS: &str =
    "about,address,description,email,profile_picture_url,websites,vertical";

impl Client {
    /// Every phone number of a WABA (`GET /{waba-id}/phone_numbers`), following paging.
    ///
    /// # Errors
    /// Any error of a call.
    pub async fn phone_numbers(&self, waba: &WabaId) -> Result<Vec<PhoneNumber>, CloudError> {
        self.all_pages(|after| {
            let call = Call::get(&[waba.as_str(), "phone_numbers"]);
            match after {
                Some(cursor) => call.query("after", cursor),
                None => call,
            }
        })
        .await
    }

    /// One phone number (`GET /{phone-number-id}`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn phone_number(&self, number: &PhoneNumberId) -> Result<PhoneNumber, CloudError> {
        self.call(Call::get(&[number.as_str()])).await
    }

    /// The number's throughput level (`GET /{phone-number-id}?fields=throughput`); map it to messages per
    /// second with [`wabridge_types::limits::Limits::mps_for`].
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn throughput(&self, number: &PhoneNumberId) -> Result<ThroughputResponse, CloudError> {
        self.call(Call::get(&[number.as_str()]).query("fields", "throughput")).await
    }

    /// Registers a number for the Cloud API with its six-digit two-step verification PIN
    /// (`POST /{phone-number-id}/register`).
    ///
    /// # Errors
    /// [`CloudError::Invalid`] when the PIN is not six digits, or any error of the call.
    pub async fn register(&self, number: &PhoneNumberId, pin: &str) -> Result<(), CloudError> {
        let request = RegisterRequest::new(pin);
        request.validate()?;
        let call = Call::post(&[number.as_str(), "register"]).json(&request)?;
        expect_success(&self.execute(&call).await?)
    }

    /// Deregisters a number (`POST /{phone-number-id}/deregister`, no body).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn deregister(&self, number: &PhoneNumberId) -> Result<(), CloudError> {
        expect_success(&self.execute(&Call::post(&[number.as_str(), "deregister"])).await?)
    }

    /// The number's business profile (`GET /{phone-number-id}/whatsapp_business_profile?fields=…`, with
    /// [`BUSINESS_PROFILE_FIELDS`]). Both answer shapes Meta documents parse: the profile itself in `data[0]`,
    /// or wrapped in `data[0].business_profile`.
    ///
    /// # Errors
    /// Any error of the call; [`CloudError::Decode`] when `data` is empty.
    pub async fn business_profile(&self, number: &PhoneNumberId) -> Result<BusinessProfile, CloudError> {
        let call = Call::get(&[number.as_str(), "whatsapp_business_profile"])
            .query("fields", BUSINESS_PROFILE_FIELDS);
        let answer = self.execute(&call).await?;
        let page: Page<Value> = answer.decode()?;
        let decode_error = |source| CloudError::Decode { status: answer.status, source };
        let mut first = page
            .data
            .into_iter()
            .next()
            .ok_or_else(|| decode_error(serde::de::Error::custom("no profile in data")))?;
        if let Some(inner) = first.get_mut("business_profile") {
            first = inner.take();
        }
        serde_json::from_value(first).map_err(decode_error)
    }

    /// Updates the number's business profile (`POST /{phone-number-id}/whatsapp_business_profile`). The
    /// profile is checked first ([`BusinessProfile::validate`]); `messaging_product` is filled in.
    ///
    /// # Errors
    /// [`CloudError::Invalid`], or any error of the call.
    pub async fn update_business_profile(
        &self,
        number: &PhoneNumberId,
        profile: &BusinessProfile,
    ) -> Result<(), CloudError> {
        profile.validate()?;
        let mut body = profile.clone();
        body.messaging_product.get_or_insert_with(|| wabridge_types::MESSAGING_PRODUCT.to_owned());
        let call = Call::post(&[number.as_str(), "whatsapp_business_profile"]).json(&body)?;
        expect_success(&self.execute(&call).await?)
    }

    /// Subscribes the app to the WABA's webhooks (`POST /{waba-id}/subscribed_apps`), optionally with an
    /// alternate callback URL and verify token for this WABA.
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn subscribe_app(
        &self,
        waba: &WabaId,
        request: Option<&SubscribeRequest>,
    ) -> Result<(), CloudError> {
        let mut call = Call::post(&[waba.as_str(), "subscribed_apps"]);
        if let Some(request) = request {
            call = call.json(request)?;
        }
        expect_success(&self.execute(&call).await?)
    }

    /// The apps subscribed to the WABA's webhooks (`GET /{waba-id}/subscribed_apps`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn subscribed_apps(&self, waba: &WabaId) -> Result<Vec<SubscribedApp>, CloudError> {
        let page: Page<SubscribedApp> = self.call(Call::get(&[waba.as_str(), "subscribed_apps"])).await?;
        Ok(page.data)
    }

    /// Unsubscribes the app from the WABA's webhooks (`DELETE /{waba-id}/subscribed_apps`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn unsubscribe_app(&self, waba: &WabaId) -> Result<(), CloudError> {
        expect_success(&self.execute(&Call::delete(&[waba.as_str(), "subscribed_apps"])).await?)
    }

    /// Reads every page of a list, building each call from the cursor to start after.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        make: impl Fn(Option<&str>) -> Call,
    ) -> Result<Vec<T>, CloudError> {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page: Page<T> = self.call(make(after.as_deref())).await?;
            let next = page.next_cursor().map(str::to_owned);
            all.extend(page.data);
            match next {
                Some(cursor) if seen.insert(cursor.clone()) => after = Some(cursor),
                _ => return Ok(all),
            }
        }
    }
}
