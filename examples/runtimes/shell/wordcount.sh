# shellcheck shell=bash
# An example handler for the shell runtime (_HANDLER=wordcount.handler): counts the words and
# bytes of the event's "text" (none: empty) and hashes it with sha256sum, returning
# {"id": <the event's id, as given>, "words": N, "bytes": N, "sha256": "...", "pid": <the
# runtime's process id>}. "sleep_s" makes it wait that long first (it stands for a long
# computation). Needs jq, as most shell handlers of JSON do.

handler() {
    local event=$1 seconds digest
    if ! jq -e 'type == "object" and (.text | type == "string" or type == "null")' \
        <<<"$event" >/dev/null; then
        fail PermanentTaskError 'text: not a string (the event is {"text": "..."})'
    fi
    seconds=$(jq -r '.sleep_s // 0' <<<"$event")
    if [[ $seconds != 0 ]]; then
        sleep "$seconds"
    fi
    digest=$(jq -j '.text // ""' <<<"$event" | sha256sum)
    jq -c --arg sha256 "${digest%% *}" --argjson pid "$$" '(.text // "") as $text | {
        id,
        words: ($text | [splits("\\s+")] | map(select(. != "")) | length),
        bytes: ($text | utf8bytelength),
        sha256: $sha256,
        pid: $pid
    }' <<<"$event"
}
