"""Word lists behind the oracle: an English→Spanish glossary and a sentiment lexicon.

They are data, kept apart from the rules in ``oracle.py``. The glossary is
word-by-word on purpose: the simulator needs answers that look like the task was
done and that tests can recompute, not good Spanish.
"""

from __future__ import annotations

__all__ = ["NEGATIVE", "POSITIVE", "SPANISH"]

_GLOSSARY = """
a:un about:sobre above:encima accept:aceptar account:cuenta after:después afternoon:tarde
again:otra age:edad ago:hace airport:aeropuerto all:todo almost:casi alone:solo also:también
although:aunque always:siempre am:soy an:un and:y animal:animal another:otro answer:respuesta
any:cualquier anything:algo anywhere:dondequiera apple:manzana are:son arrive:llegar
arrived:llegó as:como ask:preguntar asked:preguntó at:en ate:comimos autumn:otoño away:lejos
baby:bebé back:atrás bad:malo bag:bolsa bank:banco battery:batería be:ser beach:playa
beautiful:hermoso because:porque bed:cama been:sido before:antes begin:empezar behind:detrás
below:abajo best:mejor better:mejor between:entre big:grande bird:pájaro birthday:cumpleaños
black:negro blue:azul board:tablero book:libro bottle:botella box:caja boy:chico bread:pan
breakfast:desayuno bring:traer brother:hermano brought:trajo build:construir built:construyeron
bus:autobús but:pero buy:comprar by:por cake:pastel call:llamar calls:pide can:puede
car:coche card:tarjeta cash:efectivo cat:gato change:cambiar cheap:barato child:niño
children:niños city:ciudad clean:limpio close:cerrar closed:cerrado closes:cierra clothes:ropa
cloud:nube clouds:nubes coffee:café cold:frío color:color come:venir concert:concierto
cook:cocinar corner:esquina cost:costo could:podría country:país cup:taza cups:tazas
dance:baile day:día days:días dear:querido did:hizo dinner:cena do:hacer doctor:médico
does:hace dog:perro door:puerta down:abajo drink:beber during:durante each:cada early:temprano
easy:fácil eat:comer egg:huevo eggs:huevos email:correo end:fin ends:termina entrance:entrada
evening:noche every:cada everyone:todos everything:todo everywhere:todas excited:emocionados
family:familia far:lejos fast:rápido father:padre favorite:favorito few:pocos find:encontrar
finally:finalmente finished:terminado first:primero five:cinco flour:harina food:comida
for:para forget:olvidar forgot:olvidé four:cuatro friday:viernes friend:amigo friends:amigos
from:de fruit:fruta fun:divertido game:juego games:juegos garden:jardín get:obtener
gets:hace girl:chica give:dar go:ir going:va good:bueno grandmother:abuela grass:hierba
great:genial green:verde had:tenía half:medio hand:mano happy:feliz has:ha have:tener
he:él health:salud hello:hola help:ayuda her:su here:aquí hill:colina his:su home:casa
hometown:ciudad hope:espero hospital:hospital hot:caliente hotel:hotel hour:hora hours:horas
house:casa how:cómo i:yo if:si in:en is:es it:eso its:su job:trabajo july:julio just:solo
keys:llaves kids:niños kitchen:cocina know:saber large:grande last:último late:tarde
later:después learn:aprender learning:aprendiendo leave:salir leaves:sale left:izquierda
let:dejar letters:letras library:biblioteca light:luz like:como list:lista little:poco
long:largo look:mirar looked:busqué lost:perdí love:amor lovely:encantadora made:hice
make:hacer makes:hace man:hombre many:muchos market:mercado may:puede me:me meet:encontrar
meeting:reunión message:mensaje milk:leche minutes:minutos missed:perdimos monday:lunes
money:dinero month:mes more:más morning:mañana mother:madre mountains:montañas move:mover
moved:movido movie:película movies:películas much:mucho museum:museo music:música my:mi
name:nombre near:cerca need:necesitar neighbors:vecinos never:nunca new:nuevo next:próximo
nice:bonito night:noche no:no noon:mediodía not:no note:nota nothing:nada now:ahora
nurse:enfermera of:de office:oficina often:a_menudo old:viejo on:en once:una one:uno only:solo
open:abierto or:o order:pedido other:otro our:nuestro out:fuera over:sobre park:parque
party:fiesta pass:pasar pay:pagar people:gente phone:teléfono pizza:pizza plan:plan
planning:planeando plants:plantas platform:andén please:por_favor pinch:pizca plenty:mucha
price:precio question:pregunta quickly:rápidamente rain:lluvia read:leer reading:leyendo
ready:listo recipe:receta red:rojo remember:recordar rest:descansar restaurant:restaurante
right:derecha river:río road:camino room:habitación round:redondo sad:triste said:dijo
salt:sal saturday:sábado say:decir school:escuela sea:mar season:estación see:ver
send:enviar sent:envió she:ella ship:enviar shop:tienda short:corto should:debería
sister:hermana sit:sentar sleep:dormir slowly:lentamente small:pequeño so:así some:algunos
something:algo sometimes:a_veces song:canción soon:pronto sorry:lo_siento soup:sopa speak:hablar
spring:primavera start:empezar starts:empieza station:estación still:todavía stop:parar
store:tienda story:historia street:calle strong:fuerte summer:verano sun:sol sunday:domingo
sundays:domingos supermarket:supermercado table:mesa take:tomar talk:hablar tea:té
teacher:maestro tell:decir tells:cuenta thank:gracias thanks:gracias that:que the:el
their:su them:ellos then:luego there:allí they:ellos thing:cosa think:pensar this:esto
three:tres thursday:jueves ticket:billete time:tiempo to:a today:hoy together:juntos
told:dijo tomorrow:mañana too:también town:pueblo traffic:tráfico train:tren travel:viajar
tree:árbol tried:probado tuesday:martes turn:girar two:dos under:debajo up:arriba us:nos
usually:normalmente vacation:vacaciones valley:valle very:muy view:vista wait:esperar
walk:caminar walking:caminando want:querer warm:cálido was:era wash:lavar watch:mirar
watched:miramos water:agua waves:olas way:camino we:nosotros wednesday:miércoles week:semana
weekend:fin_de_semana well:bien went:fuimos were:eran what:qué when:cuando where:dónde
which:cual while:mientras white:blanco who:quien why:por_qué wife:esposa will:va window:ventana
winter:invierno with:con woman:mujer word:palabra work:trabajar works:trabaja world:mundo
write:escribir year:año years:años yellow:amarillo yes:sí yesterday:ayer you:tú your:tu
"""

SPANISH: dict[str, str] = {
    english: spanish.replace("_", " ")
    for english, spanish in (pair.split(":", 1) for pair in _GLOSSARY.split())
}
"""Lower-case English word → Spanish word (or short phrase)."""

_POSITIVE_WORDS = """
amazing awesome beautiful best brilliant comfortable delighted easy elegant enjoy enjoyed excellent
fantastic fast favorite fine glad good gorgeous great handy happy helpful impressed love loved lovely
nice perfect perfectly pleased recommend reliable satisfied smooth solid sturdy superb thank thanks
wonderful works
"""
_NEGATIVE_WORDS = """
awful bad broke broken burnt cheap complaint cracked damaged dead defective died disappointed
disappointing fail failed faulty flimsy garbage hate horrible leaking leaks leaky loud misleading poor
refund returned returning rude slow snapped stopped terrible unacceptable unusable useless waste weak
worse worst wrong
"""

POSITIVE: frozenset[str] = frozenset(_POSITIVE_WORDS.split())
"""Words that count one point towards a positive label."""

NEGATIVE: frozenset[str] = frozenset(_NEGATIVE_WORDS.split())
"""Words that count one point towards a negative label."""
