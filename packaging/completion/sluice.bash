# bash completion for sluice: commands, each command's options, files after -c/--config (YAML
# files and directories) and other file arguments, sa's sub-commands (pin, unpin, ...).
#
# Install: cp sluice.bash /usr/share/bash-completion/completions/sluice   (loaded on demand by the
# bash-completion package), or `source` it from ~/.bashrc. It needs bash 4 and nothing else.
#
# The commands and options are read from the installed sluice's own help (`sluice --help`, then
# `sluice CMD --help` the first time CMD is completed, cached for the shell's life), so completion
# cannot drift from the program it completes. Each read starts node once (~0.1 s).

declare -gA _sluice_opts=() _sluice_metas=() _sluice_subs=()
declare -g _sluice_cmds=

# Reads one help text on stdin; prints `opt NAME`, `meta NAME METAVAR` (an option taking a value)
# and `sub WORD` (sluice CMD WORD in the usage lines). Options come from the usage lines (up to the
# first blank line) and from lines that start with an option; dashes in prose (`like swanctl
# --list-sas`) are not options.
_sluice_parse_help() {
  awk -v cmd="$1" '
    function clean(w) { gsub(/^[[(|]+|[])|,.;:]+$/, "", w); return w }
    function scan(from, leading,   i, w, n) {
      for (i = from; i <= NF; i++) {
        w = clean($i)
        if (w ~ /^--?[A-Za-z][A-Za-z0-9-]*$/) {
          print "opt " w
          n = (i < NF) ? $(i + 1) : ""
          if (n !~ /^[[(]/) { n = clean(n); if (n ~ /^[A-Z][A-Z_]*$/ || n ~ /^[a-z]+\.[a-z]+$/) { print "meta " w " " n; i++ } }
        } else if (leading && w != "") return
      }
    }
    BEGIN { usage = 1 }
    /^[ \t]*$/ { usage = 0; next }
    usage {
      scan(1, 0)
      for (i = 1; i < NF; i++) if ($i == "sluice" && $(i + 1) == cmd && i + 2 <= NF && $(i + 2) ~ /^[a-z][a-z-]*$/) print "sub " $(i + 2)
      next
    }
    /^[ \t]+-[A-Za-z-]/ { scan(1, 1) }
  '
}

# Loads the main help (command list) or one command's help into the caches; fails when sluice
# cannot be run or does not know the command.
_sluice_load() {
  local prog=$1 cmd=$2 kind name rest text
  if [[ -z $cmd ]]; then
    [[ -n $_sluice_cmds ]] && return 0
    text=$("$prog" --help 2>/dev/null) || return 1
    _sluice_cmds=$(awk '/^Commands:/ { f = 1; next } /^[^ ]/ || /^$/ { f = 0 } f && /^  [a-z]/ { print $1 }' <<<"$text")
    _sluice_cmds=${_sluice_cmds//$'\n'/ }
    return 0
  fi
  [[ -n ${_sluice_opts[$cmd]+set} ]] && return 0
  text=$("$prog" "$cmd" --help 2>/dev/null) || return 1
  local opts=" --help" metas=" " subs=""
  while read -r kind name rest; do
    case $kind in
      opt) [[ " $opts " == *" $name "* ]] || opts+=" $name" ;;
      meta) metas+="$name=$rest " ;;
      sub) [[ " $subs " == *" $name "* ]] || subs+=" $name" ;;
    esac
  done < <(_sluice_parse_help "$cmd" <<<"$text")
  # -c and -s have long forms (--config, --socket) that the usage lines leave out.
  [[ $metas == *" -c="* ]] && { opts+=" --config"; metas+="--config=FILE "; }
  [[ $metas == *" -s="* ]] && { opts+=" --socket"; metas+="--socket=SOCKET "; }
  _sluice_opts[$cmd]=$opts
  _sluice_metas[$cmd]=$metas
  _sluice_subs[$cmd]=$subs
}

# Files for the word being completed: -c/--config offers YAML files and directories only.
_sluice_files() {
  local cur=$1 yaml=$2
  compopt -o filenames 2>/dev/null
  if [[ -n $yaml ]]; then
    mapfile -t COMPREPLY < <(compgen -d -- "$cur"; compgen -f -X '!*.yaml' -- "$cur"; compgen -f -X '!*.yml' -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
}

_sluice() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} prog=${COMP_WORDS[0]}
  [[ $prog == "~/"* ]] && prog=$HOME/${prog#\~/}
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    _sluice_load "$prog" "" || return 0
    mapfile -t COMPREPLY < <(compgen -W "$_sluice_cmds --help --version" -- "$cur")
    return 0
  fi
  local cmd=${COMP_WORDS[1]}
  _sluice_load "$prog" "$cmd" || return 0
  local metas=${_sluice_metas[$cmd]} meta=
  if [[ $prev == -* && $metas == *" $prev="* ]]; then
    meta=${metas#* "$prev"=}
    meta=${meta%% *}
    case $prev in
      -c | --config) _sluice_files "$cur" yaml ;;
      *) case $meta in FILE | PATH | SOCKET | DIR | *.*) _sluice_files "$cur" ;; esac ;;
    esac
    return 0 # a value that is not a file: nothing sensible to offer
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${_sluice_opts[$cmd]}" -- "$cur")
    return 0
  fi
  # The first word that is neither an option nor an option's value: a sub-command where the command
  # has them (sa pin ...), else a file (decode capture.pcap).
  local i positional=0 w
  for ((i = 2; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ $w == -* ]]; then
      [[ $metas == *" $w="* ]] && ((i++))
    else
      positional=$((positional + 1))
    fi
  done
  if [[ -n ${_sluice_subs[$cmd]} ]]; then
    ((positional == 0)) && mapfile -t COMPREPLY < <(compgen -W "${_sluice_subs[$cmd]}" -- "$cur")
    return 0
  fi
  _sluice_files "$cur"
}

complete -F _sluice sluice
