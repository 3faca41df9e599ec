-- 002 collaboration: channels, threads, messages, mentions, reactions, comments on records, shared
-- documents with versions, notifications and read state.
--
-- Same rules as 001: runs as the tenant's owner role under the tenant's search_path, names no schema,
-- row-level security ENABLEd and FORCEd on every table, policies call SECURITY DEFINER helpers (no
-- subqueries), the app role gets explicit grants only. Builds on 001's identity helpers
-- (app_current_user_id, app_current_role, is_record_visible, can_write_record, are_targets_visible).

-- ---------------------------------------------------------------------------------------------------
-- Channels and membership
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE channels (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 80),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,79}$'),
    description text NOT NULL DEFAULT '',
    topic       text NOT NULL DEFAULT '',
    visibility  text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private')),
    -- A deal room: the channel where a team works one deal.
    deal_id     uuid REFERENCES deals (id) ON DELETE SET NULL,
    is_archived boolean NOT NULL DEFAULT false,
    created_by  uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channels_deal_idx ON channels (deal_id) WHERE deal_id IS NOT NULL;

CREATE TABLE channel_members (
    channel_id   uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES crm_users (id) ON DELETE CASCADE,
    role         text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    notify_level text NOT NULL DEFAULT 'all' CHECK (notify_level IN ('all', 'mentions', 'none')),
    joined_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
-- "My channels".
CREATE INDEX channel_members_user_idx ON channel_members (user_id, channel_id);

CREATE FUNCTION is_channel_member(p_channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1 FROM channel_members m WHERE m.channel_id = p_channel AND m.user_id = app_current_user_id());
END;

CREATE FUNCTION is_channel_owner(p_channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1 FROM channel_members m
         WHERE m.channel_id = p_channel AND m.user_id = app_current_user_id() AND m.role = 'owner');
END;

-- Runs as the owner role under channels' FORCEd policy: true exactly when the session may see the channel.
CREATE FUNCTION is_channel_visible(p_channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM channels c WHERE c.id = p_channel);
END;

CREATE FUNCTION is_channel_joinable(p_channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1 FROM channels c
         WHERE c.id = p_channel
           AND NOT c.is_archived
           AND (c.visibility = 'public' OR c.created_by = app_current_user_id()));
END;
COMMENT ON FUNCTION is_channel_joinable(uuid) IS
    'A user may add themself to a public channel, or to a private one they created.';

-- ---------------------------------------------------------------------------------------------------
-- Messages and threads
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE messages (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id    uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    thread_id     uuid,
    author_id     uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    body          text NOT NULL,
    body_format   text NOT NULL DEFAULT 'markdown' CHECK (body_format IN ('plain', 'markdown')),
    edited_at     timestamptz,
    deleted_at    timestamptz,
    search_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- A deleted message keeps its place in the timeline with its text removed.
    CHECK (CASE WHEN deleted_at IS NULL THEN btrim(body) <> '' ELSE body = '' END),
    -- Target of keys that must stay inside the message's channel (threads, reactions, mentions).
    CONSTRAINT messages_id_channel_key UNIQUE (id, channel_id)
);
-- A channel's timeline and a thread's replies, in order.
CREATE INDEX messages_channel_idx ON messages (channel_id, created_at DESC) WHERE thread_id IS NULL;
CREATE INDEX messages_thread_idx ON messages (thread_id, created_at) WHERE thread_id IS NOT NULL;
CREATE INDEX messages_author_idx ON messages (author_id, created_at DESC);
CREATE INDEX messages_search_idx ON messages USING gin (search_vector);

CREATE TABLE threads (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id      uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    root_message_id uuid NOT NULL UNIQUE,
    title           text NOT NULL DEFAULT '',
    created_by      uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    is_resolved     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The root message is in the thread's channel.
    FOREIGN KEY (root_message_id, channel_id) REFERENCES messages (id, channel_id) ON DELETE CASCADE,
    CONSTRAINT threads_id_channel_key UNIQUE (id, channel_id)
);
CREATE INDEX threads_channel_idx ON threads (channel_id, created_at DESC);

-- Replies live in their thread's channel.
ALTER TABLE messages ADD CONSTRAINT messages_thread_fkey
    FOREIGN KEY (thread_id, channel_id) REFERENCES threads (id, channel_id) ON DELETE CASCADE;

CREATE TABLE message_reactions (
    message_id uuid NOT NULL,
    channel_id uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES crm_users (id) ON DELETE CASCADE,
    emoji      text NOT NULL CHECK (length(emoji) BETWEEN 1 AND 64 AND emoji !~ '[[:space:]]'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji),
    FOREIGN KEY (message_id, channel_id) REFERENCES messages (id, channel_id) ON DELETE CASCADE
);
CREATE INDEX message_reactions_user_idx ON message_reactions (user_id);

-- ---------------------------------------------------------------------------------------------------
-- Shared documents with versions
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE shared_documents (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    title      text NOT NULL CHECK (btrim(title) <> ''),
    -- private: owner and admins; team: as any owned record; tenant: every active user.
    visibility text NOT NULL DEFAULT 'team' CHECK (visibility IN ('private', 'team', 'tenant')),
    company_id uuid REFERENCES companies (id) ON DELETE SET NULL,
    deal_id    uuid REFERENCES deals (id) ON DELETE SET NULL,
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shared_documents_owner_idx ON shared_documents (owner_id) WHERE deleted_at IS NULL;
CREATE INDEX shared_documents_deal_idx ON shared_documents (deal_id) WHERE deal_id IS NOT NULL;
CREATE INDEX shared_documents_company_idx ON shared_documents (company_id) WHERE company_id IS NOT NULL;

CREATE TABLE document_versions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id    uuid NOT NULL REFERENCES shared_documents (id) ON DELETE CASCADE,
    version_no     integer NOT NULL CHECK (version_no >= 1),
    author_id      uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    change_summary text NOT NULL DEFAULT '',
    -- Either inline content (rich text) or a file in object storage.
    content        text,
    storage_key    text UNIQUE,
    content_type   text NOT NULL DEFAULT 'text/markdown',
    size_bytes     bigint NOT NULL CHECK (size_bytes >= 0),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, version_no),
    CHECK (num_nonnulls(content, storage_key) = 1)
);
COMMENT ON TABLE document_versions IS 'Immutable versions of a shared document; the highest version_no is current.';

-- ---------------------------------------------------------------------------------------------------
-- Comments on any record, mentions
-- ---------------------------------------------------------------------------------------------------

CREATE FUNCTION is_document_visible(p_document uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM shared_documents d WHERE d.id = p_document);
END;

-- The 002 counterpart of are_targets_visible: tasks, activities and documents (NULLs are ignored).
CREATE FUNCTION are_collab_targets_visible(p_task uuid, p_activity uuid, p_document uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT (p_task IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = p_task))
       AND (p_activity IS NULL OR EXISTS (SELECT 1 FROM activities a WHERE a.id = p_activity))
       AND (p_document IS NULL OR EXISTS (SELECT 1 FROM shared_documents d WHERE d.id = p_document));
END;

CREATE TABLE comments (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id         uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    body              text NOT NULL,
    parent_comment_id uuid REFERENCES comments (id) ON DELETE CASCADE,
    company_id        uuid REFERENCES companies (id) ON DELETE CASCADE,
    contact_id        uuid REFERENCES contacts (id) ON DELETE CASCADE,
    lead_id           uuid REFERENCES leads (id) ON DELETE CASCADE,
    deal_id           uuid REFERENCES deals (id) ON DELETE CASCADE,
    task_id           uuid REFERENCES tasks (id) ON DELETE CASCADE,
    activity_id       uuid REFERENCES activities (id) ON DELETE CASCADE,
    document_id       uuid REFERENCES shared_documents (id) ON DELETE CASCADE,
    edited_at         timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(company_id, contact_id, lead_id, deal_id, task_id, activity_id, document_id) = 1),
    CHECK (CASE WHEN deleted_at IS NULL THEN btrim(body) <> '' ELSE body = '' END),
    CHECK (parent_comment_id IS DISTINCT FROM id)
);
CREATE INDEX comments_company_idx ON comments (company_id, created_at) WHERE company_id IS NOT NULL;
CREATE INDEX comments_contact_idx ON comments (contact_id, created_at) WHERE contact_id IS NOT NULL;
CREATE INDEX comments_lead_idx ON comments (lead_id, created_at) WHERE lead_id IS NOT NULL;
CREATE INDEX comments_deal_idx ON comments (deal_id, created_at) WHERE deal_id IS NOT NULL;
CREATE INDEX comments_task_idx ON comments (task_id, created_at) WHERE task_id IS NOT NULL;
CREATE INDEX comments_activity_idx ON comments (activity_id, created_at) WHERE activity_id IS NOT NULL;
CREATE INDEX comments_document_idx ON comments (document_id, created_at) WHERE document_id IS NOT NULL;
CREATE INDEX comments_parent_idx ON comments (parent_comment_id) WHERE parent_comment_id IS NOT NULL;

CREATE FUNCTION is_comment_visible(p_comment uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM comments c WHERE c.id = p_comment);
END;

CREATE TABLE mentions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mentioned_user_id uuid NOT NULL REFERENCES crm_users (id) ON DELETE CASCADE,
    created_by        uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    message_id        uuid,
    channel_id        uuid,
    comment_id        uuid REFERENCES comments (id) ON DELETE CASCADE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (message_id, channel_id) REFERENCES messages (id, channel_id) ON DELETE CASCADE,
    CHECK (num_nonnulls(message_id, comment_id) = 1),
    CHECK ((message_id IS NULL) = (channel_id IS NULL))
);
CREATE UNIQUE INDEX mentions_message_key ON mentions (message_id, mentioned_user_id) WHERE message_id IS NOT NULL;
CREATE UNIQUE INDEX mentions_comment_key ON mentions (comment_id, mentioned_user_id) WHERE comment_id IS NOT NULL;
-- "Where was I mentioned".
CREATE INDEX mentions_user_idx ON mentions (mentioned_user_id, created_at DESC);

-- ---------------------------------------------------------------------------------------------------
-- Notifications and read state
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_id uuid NOT NULL REFERENCES crm_users (id) ON DELETE CASCADE,
    actor_id     uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    kind         text NOT NULL CHECK (kind IN ('mention', 'comment', 'message', 'task_assigned', 'task_due',
                                               'deal_stage', 'document_shared', 'system')),
    title        text NOT NULL CHECK (btrim(title) <> ''),
    body         text NOT NULL DEFAULT '',
    -- A pointer for the link in the UI; the record may be gone by the time it is read.
    record_table text CHECK (record_table ~ '^[a-z_]+$'),
    record_id    uuid,
    read_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((record_table IS NULL) = (record_id IS NULL))
);
-- The bell: unread first, newest first.
CREATE INDEX notifications_unread_idx ON notifications (recipient_id, created_at DESC) WHERE read_at IS NULL;
CREATE INDEX notifications_recipient_idx ON notifications (recipient_id, created_at DESC);

CREATE TABLE read_states (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid NOT NULL REFERENCES crm_users (id) ON DELETE CASCADE,
    channel_id           uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    thread_id            uuid,
    last_read_message_id uuid REFERENCES messages (id) ON DELETE SET NULL,
    last_read_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (thread_id, channel_id) REFERENCES threads (id, channel_id) ON DELETE CASCADE
);
-- One read marker per user and channel timeline, and per user and thread.
CREATE UNIQUE INDEX read_states_channel_key ON read_states (user_id, channel_id) WHERE thread_id IS NULL;
CREATE UNIQUE INDEX read_states_thread_key ON read_states (user_id, thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX read_states_channel_idx ON read_states (channel_id);

-- Marks the session user's notifications read (all, or those up to p_until); returns how many changed.
CREATE FUNCTION notifications_mark_read(p_until timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    WITH marked AS (
        UPDATE notifications n
           SET read_at = now()
         WHERE n.recipient_id = app_current_user_id()
           AND n.read_at IS NULL
           AND (p_until IS NULL OR n.created_at <= p_until)
        RETURNING 1
    )
    SELECT count(*) FROM marked;
END;

-- Adds the next version of a document; a concurrent writer of the same number fails on the unique key.
CREATE FUNCTION document_version_add(
    p_document uuid, p_content text, p_change_summary text DEFAULT ''
) RETURNS document_versions
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    INSERT INTO document_versions (document_id, version_no, author_id, change_summary, content, size_bytes, sha256)
    SELECT p_document,
           coalesce(max(v.version_no), 0) + 1,
           app_current_user_id(),
           coalesce(p_change_summary, ''),
           p_content,
           octet_length(p_content),
           encode(sha256(convert_to(p_content, 'UTF8')), 'hex')
      FROM document_versions v
     WHERE v.document_id = p_document
    RETURNING *;
END;

-- ---------------------------------------------------------------------------------------------------
-- updated_at triggers
-- ---------------------------------------------------------------------------------------------------

CREATE TRIGGER channels_updated_at BEFORE UPDATE ON channels FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER messages_updated_at BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER threads_updated_at BEFORE UPDATE ON threads FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER shared_documents_updated_at BEFORE UPDATE ON shared_documents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER comments_updated_at BEFORE UPDATE ON comments FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------------

-- Unread messages per channel of the session user (channel timelines; threads have their own markers).
CREATE VIEW channel_unread_counts WITH (security_invoker = true) AS
SELECT cm.channel_id,
       count(m.id) AS unread_count,
       max(m.created_at) AS last_message_at
  FROM channel_members cm
  LEFT JOIN read_states rs
         ON rs.user_id = cm.user_id AND rs.channel_id = cm.channel_id AND rs.thread_id IS NULL
  LEFT JOIN messages m
         ON m.channel_id = cm.channel_id
        AND m.thread_id IS NULL
        AND m.deleted_at IS NULL
        AND m.author_id IS DISTINCT FROM cm.user_id
        AND m.created_at > coalesce(rs.last_read_at, '-infinity'::timestamptz)
 WHERE cm.user_id = app_current_user_id()
 GROUP BY cm.channel_id;

CREATE VIEW document_current_versions WITH (security_invoker = true) AS
SELECT DISTINCT ON (v.document_id)
       v.document_id, v.id AS version_id, v.version_no, v.author_id, v.created_at AS version_created_at
  FROM document_versions v
 ORDER BY v.document_id, v.version_no DESC;

-- ---------------------------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------------------------

ALTER TABLE channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE channels FORCE ROW LEVEL SECURITY;
CREATE POLICY channels_identity ON channels AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY channels_select ON channels FOR SELECT
    USING (app_current_role() = 'admin'
           OR (app_current_role() IS NOT NULL
               AND (visibility = 'public' OR created_by = app_current_user_id() OR is_channel_member(id))));
CREATE POLICY channels_insert ON channels FOR INSERT
    WITH CHECK (created_by = app_current_user_id() AND app_current_role() IS NOT NULL);
CREATE POLICY channels_update ON channels FOR UPDATE
    USING (app_current_role() = 'admin' OR is_channel_owner(id));
CREATE POLICY channels_delete ON channels FOR DELETE
    USING (app_current_role() = 'admin' OR is_channel_owner(id));

-- Membership rows are read by the channel helpers: their read policy must not call them back.
ALTER TABLE channel_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_members FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_members_identity ON channel_members AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY channel_members_select ON channel_members FOR SELECT USING (app_current_user_id() IS NOT NULL);
CREATE POLICY channel_members_insert ON channel_members FOR INSERT
    WITH CHECK (app_current_role() = 'admin'
                OR is_channel_owner(channel_id)
                OR (user_id = app_current_user_id() AND is_channel_joinable(channel_id)));
CREATE POLICY channel_members_update ON channel_members FOR UPDATE
    USING (user_id = app_current_user_id() OR is_channel_owner(channel_id) OR app_current_role() = 'admin');
CREATE POLICY channel_members_delete ON channel_members FOR DELETE
    USING (user_id = app_current_user_id() OR is_channel_owner(channel_id) OR app_current_role() = 'admin');

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY messages_identity ON messages AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY messages_select ON messages FOR SELECT USING (is_channel_visible(channel_id));
CREATE POLICY messages_insert ON messages FOR INSERT
    WITH CHECK (author_id = app_current_user_id() AND is_channel_member(channel_id));
CREATE POLICY messages_update ON messages FOR UPDATE
    USING (author_id = app_current_user_id() AND is_channel_visible(channel_id))
    WITH CHECK (author_id = app_current_user_id());
CREATE POLICY messages_delete ON messages FOR DELETE
    USING (is_channel_visible(channel_id) AND (author_id = app_current_user_id() OR app_current_role() = 'admin'));

ALTER TABLE threads ENABLE ROW LEVEL SECURITY;
ALTER TABLE threads FORCE ROW LEVEL SECURITY;
CREATE POLICY threads_identity ON threads AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY threads_select ON threads FOR SELECT USING (is_channel_visible(channel_id));
CREATE POLICY threads_insert ON threads FOR INSERT
    WITH CHECK (created_by = app_current_user_id() AND is_channel_member(channel_id));
CREATE POLICY threads_update ON threads FOR UPDATE USING (is_channel_member(channel_id));
CREATE POLICY threads_delete ON threads FOR DELETE
    USING (created_by = app_current_user_id() OR app_current_role() = 'admin');

ALTER TABLE message_reactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_reactions FORCE ROW LEVEL SECURITY;
CREATE POLICY message_reactions_identity ON message_reactions AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY message_reactions_select ON message_reactions FOR SELECT USING (is_channel_visible(channel_id));
CREATE POLICY message_reactions_insert ON message_reactions FOR INSERT
    WITH CHECK (user_id = app_current_user_id() AND is_channel_visible(channel_id));
CREATE POLICY message_reactions_delete ON message_reactions FOR DELETE USING (user_id = app_current_user_id());

ALTER TABLE shared_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE shared_documents FORCE ROW LEVEL SECURITY;
CREATE POLICY shared_documents_identity ON shared_documents AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY shared_documents_select ON shared_documents FOR SELECT
    USING (((visibility = 'tenant' AND app_current_role() IS NOT NULL)
            OR is_record_visible(owner_id, visibility = 'private'))
           AND are_targets_visible(company_id, NULL, NULL, deal_id));
CREATE POLICY shared_documents_insert ON shared_documents FOR INSERT
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, NULL, NULL, deal_id));
CREATE POLICY shared_documents_update ON shared_documents FOR UPDATE
    USING (is_record_visible(owner_id, visibility = 'private') AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, NULL, NULL, deal_id));
CREATE POLICY shared_documents_delete ON shared_documents FOR DELETE
    USING (is_record_visible(owner_id, visibility = 'private') AND can_write_record(owner_id));

-- Whoever can see a document may add a version to it; versions are never changed.
ALTER TABLE document_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY document_versions_identity ON document_versions AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY document_versions_select ON document_versions FOR SELECT USING (is_document_visible(document_id));
CREATE POLICY document_versions_insert ON document_versions FOR INSERT
    WITH CHECK (author_id = app_current_user_id() AND is_document_visible(document_id));

ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;
CREATE POLICY comments_identity ON comments AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY comments_select ON comments FOR SELECT
    USING (app_current_role() IS NOT NULL
           AND are_targets_visible(company_id, contact_id, lead_id, deal_id)
           AND are_collab_targets_visible(task_id, activity_id, document_id));
CREATE POLICY comments_insert ON comments FOR INSERT
    WITH CHECK (author_id = app_current_user_id() AND app_current_role() IS NOT NULL
                AND are_targets_visible(company_id, contact_id, lead_id, deal_id)
                AND are_collab_targets_visible(task_id, activity_id, document_id));
CREATE POLICY comments_update ON comments FOR UPDATE
    USING (author_id = app_current_user_id() AND app_current_role() IS NOT NULL)
    WITH CHECK (author_id = app_current_user_id());
CREATE POLICY comments_delete ON comments FOR DELETE
    USING ((author_id = app_current_user_id() AND app_current_role() IS NOT NULL) OR app_current_role() = 'admin');

ALTER TABLE mentions ENABLE ROW LEVEL SECURITY;
ALTER TABLE mentions FORCE ROW LEVEL SECURITY;
CREATE POLICY mentions_identity ON mentions AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY mentions_select ON mentions FOR SELECT
    USING (CASE WHEN message_id IS NOT NULL THEN is_channel_visible(channel_id) ELSE is_comment_visible(comment_id) END);
CREATE POLICY mentions_insert ON mentions FOR INSERT
    WITH CHECK (created_by = app_current_user_id()
                AND CASE WHEN message_id IS NOT NULL THEN is_channel_visible(channel_id)
                         ELSE is_comment_visible(comment_id) END);
CREATE POLICY mentions_delete ON mentions FOR DELETE USING (created_by = app_current_user_id());

-- Notifications and read markers are personal.
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY notifications_identity ON notifications AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY notifications_select ON notifications FOR SELECT USING (recipient_id = app_current_user_id());
CREATE POLICY notifications_insert ON notifications FOR INSERT
    WITH CHECK (actor_id = app_current_user_id() AND app_current_role() IS NOT NULL);
CREATE POLICY notifications_update ON notifications FOR UPDATE USING (recipient_id = app_current_user_id());
CREATE POLICY notifications_delete ON notifications FOR DELETE USING (recipient_id = app_current_user_id());

ALTER TABLE read_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE read_states FORCE ROW LEVEL SECURITY;
CREATE POLICY read_states_identity ON read_states AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY read_states_all ON read_states FOR ALL
    USING (user_id = app_current_user_id())
    WITH CHECK (user_id = app_current_user_id() AND is_channel_visible(channel_id));

-- ---------------------------------------------------------------------------------------------------
-- Privileges of the CRM app role
-- ---------------------------------------------------------------------------------------------------

GRANT SELECT, INSERT, UPDATE, DELETE
    ON channels, channel_members, messages, threads, shared_documents, comments, read_states TO ${app_role};
GRANT SELECT, INSERT, DELETE ON message_reactions, mentions, notifications TO ${app_role};
-- Reading a notification is the only change to it.
GRANT UPDATE (read_at) ON notifications TO ${app_role};
-- Versions are immutable.
GRANT SELECT, INSERT ON document_versions TO ${app_role};
GRANT SELECT ON channel_unread_counts, document_current_versions TO ${app_role};
GRANT EXECUTE ON FUNCTION
    is_channel_member(uuid), is_channel_owner(uuid), is_channel_visible(uuid), is_channel_joinable(uuid),
    is_document_visible(uuid), are_collab_targets_visible(uuid, uuid, uuid), is_comment_visible(uuid),
    notifications_mark_read(timestamptz), document_version_add(uuid, text, text)
    TO ${app_role};
