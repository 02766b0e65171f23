# shellcheck shell=bash
# The handler of AWS's custom runtime tutorial, made to return JSON (the grid's results are
# JSON): _HANDLER=function.handler returns the event it is given. wordcount.sh does some work.

handler() {
    printf '%s' "$1"
}
