-- Settings changed through the API (`/v1/settings/application`): one JSON document per name.
CREATE TABLE api_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
