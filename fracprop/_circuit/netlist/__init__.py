r"""Read circuits from SPICE-style netlists (a subset of SPICE/ngspice syntax).

`parse_netlist` turns the text of a deck into a `Netlist`: its title, the compiled `Circuit`, the
``.tran`` card (if any), the integration method of ``.options method=`` (if any) and the
warnings raised while reading. `load_netlist` does the same for a
file. Errors are `NetlistError` (a `ValueError`) with the line number and the offending text;
ignored constructs produce `NetlistWarning` (a `UserWarning`), also collected in
``Netlist.warnings`` (as text) and ``Netlist.notes`` (as `NetlistNote`, with file and line).
Decks may use parameters and expressions (``.param``, ``.func``, ``{...}``), subcircuits
(``.subckt``, ``X``) and other files (``.include``, ``.lib``); where SPICE dialects differ, the
reader follows the ngspice manual.

Example::

    RC low-pass                     <- line 1 is always the title
    V1 in 0 PULSE(0 1 0 1u 1u 0.5m 1m)
    R1 in out 1k
    C1 out 0 1uF
    .tran 1u 2m
    .end

General rules
-------------
* **The first line is the title**, never a card, even when it looks like one (or is blank).
* **Case-insensitive.** Card letters, keywords, model names and node names are case-insensitive;
  node names are stored lower-case. Element names keep the spelling of the deck, but two names
  that differ only in case are duplicates.
* **Ground** is node ``0`` or ``gnd``.
* **Comments**: a line whose first non-blank character is ``*`` is a comment. ``;`` starts a
  comment anywhere on a line, and so does a ``$`` standing alone (preceded and followed by a
  blank, as in ``R1 a b 1k $ load``). Blank lines are ignored.
* **Continuation**: a line starting with ``+`` continues the previous card (comment and blank
  lines may come in between). Errors report the card's first line.
* **Separators**: blanks and commas separate fields; parentheses may be glued to a word or not
  (``SIN(0 1 1k)``, ``SIN (0 1 1k)`` and ``SIN(0, 1, 1k)`` are the same); ``=`` may have blanks
  around it. An expression in braces ``{...}`` or single quotes ``'...'`` is one field, blanks
  and all.
* ``.model``, ``.param``, ``.func`` and ``.subckt`` cards may come before or after the cards
  that use them.
* **Files**: `load_netlist` reads UTF-8, UTF-8/UTF-16/UTF-32 with a byte-order mark, and any
  other file as Latin-1 (so that no deck fails to decode); lines may end in ``\n``, ``\r\n``
  or ``\r``. Included files are read the same way.

Numbers
-------
Numbers are engineering numbers (`parse_value`): an integer or decimal with an optional exponent
(``1e3``, ``2.5``, ``.5``, ``-3``, ``1.5E-7``), then an optional scale factor, then optional unit
letters, which are ignored:

======= ========= ======= ==================
suffix  factor    suffix  factor
======= ========= ======= ==================
``T``   1e12      ``m``   1e-3
``G``   1e9       ``u``   1e-6 (also ``µ``)
``MEG`` 1e6       ``n``   1e-9
``k``   1e3       ``p``   1e-12
``mil`` 25.4e-6   ``f``   1e-15
======= ========= ======= ==================

Suffixes are case-insensitive, so ``M`` is *milli* like ``m``; write ``MEG`` for mega. Letters
after the number (and after its scale factor) are ignored: ``10V`` = 10, ``60Hz`` = 60, ``1mF`` =
1e-3, ``0.01pA`` = 1e-14, ``1kohm`` = 1000. As in SPICE, a unit letter that is itself a scale
factor is read as one: ``1F`` is one *femto*\ farad, write ``1`` for one farad. Anything other than
letters after the number (``1x2``, ``1k2``, ``10%``) is an error.

Wherever a number is written on an element, source, ``.model``, ``.tran`` or ``.options`` card,
an expression in braces or single quotes may be written instead: ``R1 a b {2*rload}``,
``SIN(0 {amp} 'f0/2')``, ``.model DX D(IS={is0})``, ``.tran {tau/100} {10*tau}``. A parameter
alone is written in braces too (``{rload}``; a bare ``rload`` would be a model name).

Expressions
-----------
Expressions (ngspice manual, "Syntax of expressions") are made of engineering numbers
(``2.2u``, ``1meg``), parameter names, parentheses (braces group too) and, from lowest to highest
precedence:

===================================== ===================================================
``c ? a : b``                         ternary (groups from the right; only the branch
                                      taken is evaluated)
``||``                                logical or (1 or 0; the right side is evaluated only
                                      when needed, as is that of ``&&``)
``&&``                                logical and
``==  !=  <>  <  <=  >  >=``          comparisons (1 or 0); ``1 < 2 < 3`` is
                                      ``(1 < 2) < 3``, as in C
``+  -``                              addition, subtraction
``*  /``                              multiplication, division
``-  +  !``                           unary minus, plus, logical not
``^  **``                             power
===================================== ===================================================

Binary operators of equal precedence group from the left, the power too: ``2^3^2`` is 64. The
power binds tighter than a unary minus (``-2^2`` is −4) and, as ngspice's, is ``pwr``:
``x^y = |x|^y``, so ``(-2)^3`` is 8, with a warning (write ``pow(x, y)`` for the signed power).
Both are what ngspice 39 computes; the precedence table of the ngspice manual puts the unary
minus first, which ngspice itself does not do.

Functions: ``sqrt exp log ln log10 abs sin cos tan asin acos atan arctan sinh cosh tanh asinh
acosh atanh floor ceil int nint sgn`` (one argument; ``log`` is the natural logarithm as in
ngspice, ``int`` rounds toward 0, ``nint`` to the nearest integer with halves to even, ``sgn`` is
−1, 0 or 1), ``pow(x, y)`` (the signed power; a negative ``x`` needs an integer ``y``),
``pwr(x, y) = |x|^y``, ``min(x, y)``, ``max(x, y)``, ``if(c, a, b)`` = ``ternary_fcn(c, a, b)``
= ``c ? a : b``, and ``limit(x, lo, hi)``, ``x`` clamped to ``[lo, hi]`` (ngspice's
two-argument ``limit`` and its other Monte-Carlo functions ``gauss``, ``agauss``, ``unif`` and
``aunif`` draw random numbers, and are errors here). As in ngspice, there are no predefined
constants: define ``pi`` with ``.param`` where it is needed.

An unknown name (the message lists the parameters defined), an unknown function, a wrong
number of arguments, a division by zero (``x/0``, ``0^-1``), a result that is not a finite real
number (``sqrt(-1)``, ``log(0)``, ``exp(1000)``) and a syntax error (with its position) are
errors that name the card.

Parameters and functions
------------------------
``.param name=value [name=value ...]``
    Defines parameters. A value is an expression, bare or in braces or quotes; a bare value
    runs to the next ``name=`` and may contain blanks (``.param a = 123 * 3  b = sqrt(9)``; ngspice
    would end ``a`` at the first blank). Parameters may refer to parameters defined before or
    after them: they are evaluated by dependency, and a definition that needs itself is an error
    naming the cycle (``a → b → a``). A name defined twice in the same scope is an error.
``.global_param name=value ...``
    The same, for the deck only (not inside a subcircuit).
``.func name(arg, ...) = {expression}``
    A function usable in expressions (``=``, braces and quotes optional). Its arguments hide
    parameters of the same name; other names are those visible where it is defined. It may not
    replace a built-in function; a function that calls itself, directly or not, is an error.

Element cards
-------------
``n+`` and ``n-`` are node names. Current flows from ``n+`` through the element to ``n-``.

``Rname n+ n- value``
    Linear resistor of ``value`` ohms (must be positive). As in ngspice, the value of an ``R``,
    ``C`` or ``L`` card may also be written ``r=value``, ``c=value`` or ``l=value``.
``Rname n+ n- MODEL``
    Fractional memristor, with ``MODEL`` a ``.model`` of type ``FMEM`` (below).
``Cname n+ n- value [IC=v]``
    Linear capacitor of ``value`` farads. ``IC=`` is accepted and ignored with a warning.
``Cname n+ n- MODEL [IC=v]``
    ``MODEL`` of type ``FCAP`` (constant-phase element) or ``NCAP`` (nonlinear capacitor).
``Lname n+ n- value [IC=i]``
    Linear inductor of ``value`` henries. ``IC=`` is accepted and ignored with a warning.
``Lname n+ n- MODEL [IC=i]``
    ``MODEL`` of type ``NIND`` (nonlinear inductor).
``Dname anode cathode MODEL``
    Shockley diode, with ``MODEL`` a ``.model`` of type ``D``.
``Vname n+ n- SPEC`` and ``Iname n+ n- SPEC``
    Independent voltage source (``v(n+) − v(n-)`` is imposed) and current source (the current
    flows from ``n+`` through the source to ``n-``). ``SPEC`` is made of:

    * ``value`` or ``DC value``: a constant;
    * ``SIN(VO VA FREQ [TD [THETA [PHASE]]])``: ``VO + VA·exp(−THETA·(t−TD))·sin(2π·FREQ·(t−TD)
      + PHASE·π/180)`` after ``TD`` (defaults ``TD = THETA = PHASE = 0``);
    * ``PULSE(V1 V2 [TD [TR [TF [PW [PER]]]]])``: trapezoidal pulses. As in ngspice, ``TD``
      defaults to 0, ``TR`` and ``TF`` to the ``.tran`` step when omitted or zero, ``PW`` and
      ``PER`` to the ``.tran`` stop time when omitted or zero. Without a ``.tran`` card, ``TR``
      and ``TF`` default to 0 (an instantaneous edge) and ``PW`` and ``PER`` to infinity;
    * ``PWL(t1 v1 t2 v2 ...)``: piecewise linear, held constant outside the points; the times
      must increase strictly;
    * ``AC mag [phase]``: ignored with a warning (there is no small-signal analysis).

    The parentheses of a function may be omitted (``PULSE 0 1 1u``). When a line has both a DC
    value and a transient function, the transient function is used (as in SPICE's ``.tran``).
    A source with no value at all is 0 (with a warning), as in ngspice.
``Xname node1 node2 ... SUBCKT [params:] [name=value ...]``
    An instance of subcircuit ``SUBCKT`` (below), its ports connected to the nodes in order.
    ``name=value`` overrides the subcircuit's parameter ``name`` for this instance; the value is
    an expression evaluated where the ``X`` card is (in braces if it has blanks).

Any other element letter (``M``, ``Q``, ``J``, ``E``, ``F``, ``G``, ``H``, ``K``, ``B``, ``S``,
``W``, ``T`` ...) is an error. Extra fields on an element card (such as ``TC=`` or ``M=``) are
errors too, except ``IC=`` on capacitors and inductors.

Subcircuits
-----------
``.subckt NAME port1 port2 ... [params:] [name=default ...]`` ... ``.ends [NAME]``
    Defines subcircuit ``NAME`` (ngspice manual, "Subcircuits"): the cards up to ``.ends`` (element,
    ``X``, ``.model``, ``.param``, ``.func`` and nested ``.subckt`` cards). Each ``X`` card
    puts a copy in the circuit, flattened as ngspice does:

    * node ``n`` of instance ``X1`` becomes ``x1.n`` (``x1.x2.n`` for ``X2`` inside ``X1``);
      ports become the nodes of the ``X`` card, and ground (``0``, ``gnd``) stays ground
      everywhere (it cannot be a port);
    * element ``R1`` of ``X1`` becomes ``R.X1.R1`` (``R.X1.X2.R1`` inside ``X2`` inside
      ``X1``): its letter, the instance path, its name, in the deck's spelling (ngspice prints
      them lower-case, ``r.x1.r1``; names are case-insensitive).

    Scopes are lexical: the cards of a subcircuit see its parameters (defaults overridden by
    the instance, then its own ``.param`` cards), then those of the definitions around it, then
    the deck's; the same holds for ``.func``, ``.model`` and ``.subckt`` names. A default may
    use other parameters of the subcircuit and the deck's. ``.tran``, ``.options``, ``.title``
    and ``.global_param`` belong to the deck and are errors inside a subcircuit.

    An unknown subcircuit, a wrong number of nodes on the ``X`` card, a parameter the
    subcircuit does not have, a subcircuit that contains itself (directly or not), a ``.subckt``
    without ``.ends`` and an ``.ends`` that closes another subcircuit are errors; an error
    inside an instance names it (``[in X1.X2, an instance of 'inner']``).

Other files
-----------
``.include FILE`` (or ``.inc``)
    Reads the cards of ``FILE`` in place of this card. ``.lib FILE SECTION`` reads only section
    ``SECTION`` of ``FILE``: the cards between ``.lib SECTION`` and ``.endl [SECTION]`` in that
    file (its other lines are skipped). Sections of the deck itself are skipped unless a
    ``.lib`` card reads them.

    Quotes around ``FILE`` are optional (needed for names with blanks). A relative path starts
    from the folder of the file that contains the card: that of the deck for `load_netlist`, the
    current directory for `parse_netlist`. An included file has no title line, and a ``.end`` in
    it is skipped, as in ngspice. A file that is missing or cannot be read, a file that includes
    itself (directly or through others), a missing section and a section without ``.endl`` are
    errors. Errors and warnings in an included file name the chain of files: ``a.cir, line 3 →
    lib/b.lib, line 7: ...``.

Model cards
-----------
``.model NAME TYPE(param=value param=value ...)``; the parentheses are optional and may be
separated from ``TYPE`` by a blank, and parameters may be separated by commas. Parameter names are
case-insensitive. Values are engineering numbers, except ``law``, which takes a law name.

``D`` (diode, used by ``D`` cards): ``i = IS·(exp(v/(N·Vt)) − 1)``, with SPICE's ``Vt`` at 27 °C
    and ``gmin = 1e-12`` S in parallel.

    * ``IS``: saturation current in amperes (default 1e-14);
    * ``N``: emission coefficient (default 1).

    Every other SPICE diode parameter (``RS``, ``CJO``, ``VJ``, ``M``, ``TT``, ``BV``, ``IBV``,
    ``EG``, ``XTI`` ...) is accepted and ignored, with one warning per parameter.

``FMEM`` (fractional memristor, used by ``R`` cards): ``i = D^{1−α}[g·s(Ψ)]`` with
    ``Ψ = I^{1−α} v`` (fractional integral of the voltage, in V·s^{1−α}).

    * ``g`` (required): the small-signal conductance in siemens (> 0);
    * ``alpha`` (required): the order α, in (0, 1];
    * ``law``: the shape ``s`` (default ``linear``: the element is then a resistor of
      conductance ``g``; with α = 1 it is the nonlinear resistor ``i = g·s(v)``);
    * ``psi0``: the law's scale, in the units of Ψ (V·s^{1−α}); default 1, unused by ``linear``.

``FCAP`` (fractional capacitor / constant-phase element, used by ``C`` cards):
    ``i = c·ᶜD^α v``, impedance ``1/(c·s^α)``.

    * ``c`` (required): the pseudo-capacitance in F·s^{α−1} (> 0);
    * ``alpha`` (required): the order α, in (0, 1] (α = 1 is an ordinary capacitor).

``NCAP`` (nonlinear capacitor, used by ``C`` cards): ``q = c·s(v)``.

    * ``c`` (required): the small-signal capacitance in farads (> 0);
    * ``law``: the shape ``s`` (default ``linear``);
    * ``v0``: the law's scale in volts (default 1); with ``tanh`` the charge saturates at
      ``±c·v0``.

``NIND`` (nonlinear inductor, used by ``L`` cards): ``i = s(Φ)/l`` with flux ``Φ = ∫v dt``.

    * ``l`` (required): the small-signal inductance in henries (> 0);
    * ``law``: the shape ``s`` (default ``linear``);
    * ``phi0``: the law's scale in webers (V·s, default 1); with ``sinh`` or ``cubic`` the core
      saturates (the current grows fast) beyond ``|Φ| ≈ phi0``; with ``tanh`` the current
      saturates at ``±phi0/l``.

An unknown parameter of ``FMEM``, ``FCAP``, ``NCAP`` or ``NIND``, a missing required one, a
duplicated one, or a model type other than these five is an error.

Laws
----
Every law is a shape with ``s(0) = 0`` and ``s'(0) = 1``, so ``g``, ``c`` and ``l`` are always the
small-signal values at the origin, and the scale says where the element departs from linearity:

* ``linear``: ``s(x) = x`` (no scale);
* ``tanh``: ``s(x) = scale·tanh(x/scale)``, saturating at ``±scale``;
* ``sinh``: ``s(x) = scale·sinh(x/scale)``, growing exponentially beyond ``|x| ≈ scale``;
* ``cubic``: ``s(x) = x·(1 + (x/scale)²)``, hardening beyond ``|x| ≈ scale``.

``x`` is Ψ for a memristor (scale ``psi0``), the voltage for a capacitor (scale ``v0``) and the
flux for an inductor (scale ``phi0``). Scales must be positive.

Control cards
-------------
``.tran TSTEP TSTOP [TSTART [TMAX]] [UIC]``
    Becomes ``Netlist.tran = Tran(tstep, tstop, uic)``. A nonzero ``TSTART`` is ignored with a
    warning (results start at t = 0); ``TMAX`` is ignored. At most one ``.tran`` card.
    ``.tran 0 TSTOP`` and ``.tran TSTOP`` (LTspice's forms; ngspice 39 rejects a zero TSTEP) set
    the output step to TSTOP/50, the largest internal step ngspice takes by default, with a
    warning.
``.options``/``.option``/``.opt`` ``name=value ...``
    ``METHOD=trap|gear|euler`` becomes ``Netlist.method``, the integration method of the
    capacitors and inductors, as in SPICE (without it `simulate`'s default ``trap``
    applies); ``MAXORD`` may only be 2 (trap and gear are of order 2). ``RELTOL``,
    ``VNTOL`` and ``ABSTOL`` (positive numbers) become ``Netlist.options = Options(reltol,
    vntol, abstol)``, the tolerances of the time-error control of ``fracprop simulate``
    (`simulate`'s ``rtol``, ``atol`` and ``atol_current``). An unknown method or a bad value
    is an error; every other option is ignored with a warning.
``.title TEXT``
    Replaces the title.
``.end``
    Ends the deck; everything after it is ignored.
Output cards and other analyses
    ``.op``, ``.print``, ``.plot``, ``.save``, ``.probe``, ``.meas``/``.measure``,
    ``.four``/``.fourier``, ``.fft``, ``.sens``, ``.noise``, ``.disto``, ``.pz``, ``.tf``,
    ``.ac``, ``.dc`` and ``.width`` do not change a transient analysis: each is ignored with a
    warning.
``.ic``, ``.nodeset``, ``.temp``
    Not honoured (fracprop starts from its own operating point, or from rest with ``UIC``, and
    at SPICE's 27 °C): ignored with a warning.
``.control`` ... ``.endc``
    The whole block is skipped with a warning.

Any other dot-card (``.global``, ``.csparam`` ...) is an error.

Errors and warnings
-------------------
A message starts with ``line N: `` (or ``SOURCE, line N: `` when a ``source`` other than the
default is given, such as a file name; ``a.cir, line 3 → b.lib, line 7: `` for a line of an
included file) and quotes the offending text. Structural errors found when the circuit is
compiled (a node with no DC path to ground, a loop of voltage sources, no elements) concern no
single line and start with ``SOURCE: ``. ``fracprop simulate`` prints each warning as one line,
``deck.cir:12: warning: ...`` (`NetlistNote.one_line`).
"""

from .numbers import parse_value as parse_value
from .parser import load_netlist as load_netlist
from .parser import parse_netlist as parse_netlist
from .result import Netlist as Netlist
from .result import NetlistError as NetlistError
from .result import NetlistNote as NetlistNote
from .result import NetlistWarning as NetlistWarning
from .result import Options as Options
from .result import Place as Place
from .result import Tran as Tran
