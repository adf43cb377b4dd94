"""`vmbake completion bash`: a bash completion script for the commands, their flags, the shipped
templates and, after -only= or -except=, the build names of the template on the line."""

from __future__ import annotations

from vmbake import registry


def _shipped_builds() -> dict[str, list[str]]:
    from vmbake.errors import VmbakeError
    from vmbake.template import load_template

    builds: dict[str, list[str]] = {}
    for name in registry.shipped_templates():
        try:
            builds[name] = [b.name for b in load_template(name, check=False).builds]
        except VmbakeError:
            builds[name] = []
    return builds


def bash_script() -> str:
    from vmbake.cli import COMMANDS

    commands = " ".join(COMMANDS)
    flag_cases = []
    for name, (_, flags) in COMMANDS.items():
        words = " ".join(f"-{f.name}" + ("" if f.kind == "bool" else "=") for f in flags)
        flag_cases.append(f"        {name}) flags='{words}' ;;")
    shipped = _shipped_builds()
    build_cases = [f"        {n}) echo '{' '.join(b)}' ;;" for n, b in shipped.items()]
    templates = " ".join(shipped)
    key_types = " ".join(
        dict.fromkeys([*registry.builder_types(), *registry.PROVISIONERS, *registry.POST_PROCESSORS])
    )
    return f"""# bash completion for vmbake; made by 'vmbake completion bash'.
# Load it with: source <(vmbake completion bash)

_vmbake_builds() {{
    case "$1" in
{chr(10).join(build_cases)}
        *)
            if [ -e "$1" ]; then
                vmbake inspect -machine-readable "$1" 2>/dev/null | awk -F, '$3 == "template-builder" {{print $4}}'
            fi
            ;;
    esac
}}

_vmbake_template() {{
    # The first positional word after the command: a word that is not a flag and not a flag's value.
    local i word prev
    for ((i = 2; i < ${{#COMP_WORDS[@]}}; i++)); do
        [ "$i" -eq "$COMP_CWORD" ] && continue
        word="${{COMP_WORDS[i]}}"
        prev="${{COMP_WORDS[i-1]}}"
        case "$word" in -*|=) continue ;; esac
        case "$prev" in =|-var|--var|-var-file|--var-file|-only|--only|-except|--except|-output-file|--output-file) continue ;; esac
        echo "$word"
        return
    done
}}

_vmbake() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="" flag="" prefix="" flags=""
    [ "$COMP_CWORD" -gt 0 ] && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{commands}" -- "$cur"))
        return 0
    fi
    local cmd="${{COMP_WORDS[1]}}"
    # bash splits -only=NAME at '=' (COMP_WORDBREAKS); without that split the word is whole.
    if [ "$cur" = "=" ]; then
        flag="$prev"; cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 3 ]; then
        flag="${{COMP_WORDS[COMP_CWORD-2]}}"
    else
        case "$cur" in
            -*=*) flag="${{cur%%=*}}"; prefix="${{cur%%=*}}="; cur="${{cur#*=}}" ;;
        esac
    fi
    case "$flag" in
        -only|--only|-except|--except)
            COMPREPLY=($(compgen -P "$prefix" -W "$(_vmbake_builds "$(_vmbake_template)")" -- "$cur"))
            return 0
            ;;
        -on-error|--on-error)
            COMPREPLY=($(compgen -P "$prefix" -W "cleanup abort ask" -- "$cur"))
            return 0
            ;;
        ?*)
            COMPREPLY=($(compgen -P "$prefix" -f -- "$cur"))
            return 0
            ;;
    esac
    case "$cmd" in
{chr(10).join(flag_cases)}
    esac
    case "$cur" in
        -*)
            COMPREPLY=($(compgen -W "$flags" -- "$cur"))
            [ "${{#COMPREPLY[@]}}" -eq 1 ] && [ "${{COMPREPLY[0]: -1}}" = "=" ] && compopt -o nospace 2>/dev/null
            return 0
            ;;
    esac
    case "$cmd" in
        help)
            if [ "$prev" = "keys" ]; then
                COMPREPLY=($(compgen -W "{key_types}" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "{commands} keys template" -- "$cur"))
            fi
            ;;
        completion) COMPREPLY=($(compgen -W "bash" -- "$cur")) ;;
        build|validate|inspect|console|init)
            COMPREPLY=($(compgen -W "{templates}" -- "$cur") $(compgen -f -- "$cur")) ;;
        *) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return 0
}}

complete -F _vmbake vmbake
"""
