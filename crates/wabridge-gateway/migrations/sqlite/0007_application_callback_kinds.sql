-- The `webhooks.url` application setting's callback (id `application`) gets the event kinds the On-Premises API
-- sent to its webhook: messages, statuses, payments and errors. Before, it was created with every kind ('' in
-- `kinds`), so On-Premises applications also received the gateway's alerts and template and account changes.
-- Set again by every `PATCH /v1/settings/application` from now on.
UPDATE callbacks SET kinds = 'message,status,payment,error' WHERE id = 'application' AND source = 'api' AND kinds = '';
